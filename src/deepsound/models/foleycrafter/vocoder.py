"""The HiFi-GAN vocoder of FoleyCrafter's ``vocoder/`` folder and Auffusion's spectrogram images.

Written here rather than taken from a library: transformers' ``SpeechT5HifiGan`` is the field's
HiFi-GAN, but it names its upsamplers ``upsampler`` (the file says ``ups``), has no output padding
for odd kernel/rate differences and no ``ResBlock2``, and expects its input transposed and
normalised. The file stores weight-normed convolutions (``weight_g`` / ``weight_v``); they are
folded into plain weights while loading (:func:`fold_weight_norm`), which is what the official
``remove_weight_norm`` does after its load, so the forward pass is a plain convolution stack.

The spectrogram the diffusion model draws is an image: three equal channels in [0, 1], frequency
flipped top to bottom, log magnitude mapped linearly from [log 1e-5, log 200].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.1
MAX_WAV_VALUE = 32768.0
LOG_MIN, LOG_MAX = math.log(1e-5), math.log(200.0)


@dataclass(frozen=True)
class VocoderConfig:
    """The numbers of the vocoder's ``config.json`` (HiFi-GAN's own keys)."""

    num_mels: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    resblock: str = "1"
    sampling_rate: int = 16000

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VocoderConfig:
        return cls(
            num_mels=int(data["num_mels"]),
            upsample_rates=tuple(data["upsample_rates"]),
            upsample_kernel_sizes=tuple(data["upsample_kernel_sizes"]),
            upsample_initial_channel=int(data["upsample_initial_channel"]),
            resblock_kernel_sizes=tuple(data["resblock_kernel_sizes"]),
            resblock_dilation_sizes=tuple(tuple(d) for d in data["resblock_dilation_sizes"]),
            resblock=str(data.get("resblock", "1")),
            sampling_rate=int(data.get("sampling_rate", 16000)),
        )

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)


def _same(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class _ResBlock(nn.Module):
    """``ResBlock1`` (two convolutions per dilation) or ``ResBlock2`` (one)."""

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int], kind: str) -> None:
        super().__init__()

        def conv(d: int) -> nn.Conv1d:
            return nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=_same(kernel, d))

        self.kind = kind
        if kind == "1":
            self.convs1 = nn.ModuleList(conv(d) for d in dilations)
            self.convs2 = nn.ModuleList(conv(1) for _ in dilations)
        else:
            self.convs = nn.ModuleList(conv(d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "1":
            for c1, c2 in zip(self.convs1, self.convs2, strict=True):
                x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        else:
            for c in self.convs:
                x = x + c(F.leaky_relu(x, LRELU_SLOPE))
        return x


class HifiGanVocoder(nn.Module):
    """``(B, num_mels, frames)`` log-magnitude spectrogram → ``(B, frames * hop)`` waveform in [-1, 1]."""

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.num_mels, ch, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True)):
            odd = (k - u) % 2
            self.ups.append(
                nn.ConvTranspose1d(
                    ch // 2**i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2 + odd, output_padding=odd
                )
            )
        self.resblocks = nn.ModuleList(
            _ResBlock(ch // 2 ** (i + 1), k, d, config.resblock)
            for i in range(len(self.ups))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True)
        )
        self.conv_post = nn.Conv1d(ch // 2 ** len(self.ups), 1, 7, 1, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        n = len(self.config.resblock_kernel_sizes)
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * n : (i + 1) * n]
            total = blocks[0](x)
            for block in blocks[1:]:
                total = total + block(x)
            x = total / n
        return torch.tanh(self.conv_post(F.leaky_relu(x))).squeeze(1)


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weight_g`` / ``weight_v`` pairs (``torch.nn.utils.weight_norm``, dim 0) → ``weight``."""
    out = {k: v for k, v in state.items() if not k.endswith(("weight_g", "weight_v"))}
    for key in [k for k in state if k.endswith("weight_v")]:
        stem = key[: -len("weight_v")]
        v, g = state[key], state[stem + "weight_g"]
        norm = v.norm(2, dim=tuple(range(1, v.dim())), keepdim=True)
        out[stem + "weight"] = v * (g / norm)
    return out


def denormalize_spectrogram(image: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` spectrogram image in [0, 1] → ``(H, W)`` log magnitude (rows low → high)."""
    flipped = torch.flip(image, [1])
    return flipped[0] * (LOG_MAX - LOG_MIN) + LOG_MIN


def pcm16(wave: torch.Tensor) -> torch.Tensor:
    """What the official writer stores: ``int16(wave * 32768)`` (truncation), back as floats in [-1, 1)."""
    scaled = (wave.double() * MAX_WAV_VALUE).trunc().clamp(-MAX_WAV_VALUE, MAX_WAV_VALUE - 1)
    return (scaled / MAX_WAV_VALUE).float()
