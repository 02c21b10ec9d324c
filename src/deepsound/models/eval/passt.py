"""PaSST-S (AudioSet, SWA, f128 p16 s10) as av-benchmark runs it for FD_PaSST and KL_PaSST.

Weight-compatible with ``passt-s-f128-p16-s10-ap.476-swa.pt`` (Koutini et al.): the
file is the bare ``PaSST`` state dict (distilled ViT-B with separate frequency and
time position embeddings) and loads strictly. The front end is hear21passt's
``AugmentMelSTFT`` in eval mode: pre-emphasis ``x[t+1] - 0.97 x[t]``, a centred
1024-point STFT of an 800-sample symmetric Hann window every 320 samples, power,
128 Kaldi mel banks over 0-15 kHz, ``(log(mel + 1e-5) + 4.5) / 5``.

av-benchmark pads or crops every clip to exactly 10 s at 32 kHz (320 000 samples)
before the model, takes ``net``'s ``(logits, features)`` and caches two files,
``passt_features_embed.pth`` (768-d, the mean of the class and distillation tokens)
and ``passt_logits.pth`` (527 AudioSet logits, before any sigmoid);
:func:`passt_features` returns ``{"features_embed": [B,768], "logits": [B,527]}``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deepsound.models.kaldi import mel_banks
from deepsound.weights.loading import LoadRules, load_published

SAMPLE_RATE = 32000
CLIP_SAMPLES = 320_000
CLASSES = 527
EMBED_DIM = 768
N_MELS = 128
N_FFT = 1024
WIN_LENGTH = 800
HOP = 320
FMAX = 15000.0  # sr // 2 - fmax_aug_range // 2 (hear21passt's default when fmax is None)
CACHE_FILES = {"features_embed": "passt_features_embed.pth", "logits": "passt_logits.pth"}
"""Output key -> av-benchmark cache file (each ``{stem: Tensor}``)."""


def _fold_rgb_patch_embed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """hear21passt sums a 3-channel patch kernel to one channel when loading; the AudioSet file has one."""
    weight = state.get("patch_embed.proj.weight")
    if weight is not None and weight.dim() == 4 and weight.shape[1] == 3:
        state = {**state, "patch_embed.proj.weight": weight.float().sum(dim=1, keepdim=True).to(weight.dtype)}
    return state


REGISTRY_NAME = "passt_s_swa"
LOAD_RULES = LoadRules(unwrap=("model",), transform=_fold_rgb_patch_embed)


class MelFrontEnd(nn.Module):
    """hear21passt's ``AugmentMelSTFT`` without augmentation; no tensors in any state dict."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(WIN_LENGTH, periodic=False), persistent=False)
        self.register_buffer("preemphasis", torch.as_tensor([[[-0.97, 1.0]]]), persistent=False)
        banks = mel_banks(N_MELS, N_FFT, SAMPLE_RATE, 0.0, FMAX)
        self.register_buffer("mel_basis", F.pad(banks, (0, 1)), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = F.conv1d(wave.unsqueeze(1), self.preemphasis).squeeze(1)
        spec = torch.stft(
            x,
            N_FFT,
            hop_length=HOP,
            win_length=WIN_LENGTH,
            center=True,
            normalized=False,
            window=self.window,
            return_complex=True,
        )
        power = torch.view_as_real(spec).pow(2).sum(dim=-1)
        mel = torch.matmul(self.mel_basis, power)
        return ((mel + 0.00001).log() + 4.5) / 5.0


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int = 16, stride: int = 10) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=patch, stride=stride)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PaSST(nn.Module):
    """The distilled PaSST transformer; ``forward(mel[B, 1, 128, frames])`` -> ``(logits, features)``.

    ``dim``/``depth``/``heads`` default to PaSST-S; smaller values exist for tests only.
    """

    def __init__(
        self, dim: int = EMBED_DIM, depth: int = 12, heads: int = 12, grid: tuple[int, int] = (12, 99)
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, dim, grid[0], 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, dim, 1, grid[1]))
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, CLASSES))
        self.head_dist = nn.Linear(dim, CLASSES)
        self.mel = MelFrontEnd()

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.patch_embed.proj(mel)  # (B, E, F, T)
        x = x + self.time_new_pos_embed[..., : x.shape[-1]] + self.freq_new_pos_embed
        x = x.flatten(2).transpose(1, 2)
        b = x.shape[0]
        cls = self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1]
        dist = self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:]
        x = self.norm(self.blocks(torch.cat((cls, dist, x), dim=1)))
        features = (x[:, 0] + x[:, 1]) / 2
        return self.head(features), features

    def embed(self, wave_32k: torch.Tensor) -> dict[str, torch.Tensor]:
        """Exactly-10-s 32 kHz waveforms ``(B, 320000)`` -> features and logits."""
        logits, features = self(self.mel(wave_32k).unsqueeze(1))
        return {"features_embed": features, "logits": logits}


def pad_or_crop(wave: torch.Tensor, samples: int = CLIP_SAMPLES) -> torch.Tensor:
    """av-benchmark's PaSST input: the first ``samples`` samples, zero-padded at the end when short."""
    if wave.shape[-1] >= samples:
        return wave[..., :samples]
    return F.pad(wave, (0, samples - wave.shape[-1]))


def load_passt(
    path: Path | str | None = None,
    device: str = "auto",
    *,
    weights_dir: Path | None = None,
    offline: bool = False,
) -> PaSST:
    """PaSST-S from ``passt-s-f128-p16-s10-ap.476-swa.pt`` (strict), in eval mode on ``device``.

    ``path`` is a file or a folder; without it the registry entry ``passt_s_swa`` is looked up
    in ``weights_dir``, the cache, and downloaded unless ``offline``.
    """
    model = load_published(
        PaSST(),
        REGISTRY_NAME,
        "PaSST-S",
        LOAD_RULES,
        path=path,
        weights_dir=weights_dir,
        offline=offline,
        device=device,
    )
    return model  # type: ignore[return-value]


@torch.inference_mode()
def passt_features(model: PaSST, waveform_32k: torch.Tensor) -> dict[str, torch.Tensor]:
    """``(B, T)`` 32 kHz mono -> ``{"features_embed": [B,768], "logits": [B,527]}`` (float32, CPU).

    Pads or crops to 10 s first, as av-benchmark does before calling the model.
    """
    device = next(model.parameters()).device
    wave = pad_or_crop(waveform_32k.to(device=device, dtype=torch.float32))
    return {k: v.float().cpu() for k, v in model.embed(wave).items()}
