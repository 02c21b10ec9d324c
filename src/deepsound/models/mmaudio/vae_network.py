"""MMAudio's 1-D mel VAE: latent sequence <-> normalised log-mel spectrogram.

The decoder turns a ``(B, embed_dim, L)`` latent into a ``(B, n_mels, 2L)`` mel
(one x2 upsampling stage); the encoder does the reverse and is only needed to
encode reference audio. Module and parameter names follow the published
``v1-16.pth`` / ``v1-44.pth`` files so that they load strictly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from deepsound.models.mmaudio.vae_layers import (
    AttnBlock1d,
    Downsample1d,
    MPConv1d,
    ResnetBlock1d,
    Upsample1d,
    mp_silu,
)

_CLIP_ACT = 256.0  # activations are clamped to this range after every block, as in training


@dataclass(frozen=True)
class VAEConfig:
    """Sizes of one VAE; the two published ones are :data:`VAE_16K` and :data:`VAE_44K`."""

    data_dim: int  # mel bins
    embed_dim: int  # latent channels
    hidden_dim: int
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    attn_layers: tuple[int, ...] = (
        3,
    )  # level 3 does not exist with 3 levels: no attention outside the middle
    down_layers: tuple[int, ...] = (0,)


VAE_16K = VAEConfig(data_dim=80, embed_dim=20, hidden_dim=384)
VAE_44K = VAEConfig(data_dim=128, embed_dim=40, hidden_dim=512)


class _Middle(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock1d(channels, channels)
        self.attn_1 = AttnBlock1d(channels)
        self.block_2 = ResnetBlock1d(channels, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class _Level(nn.Module):
    """One resolution level: residual blocks, optional attention after each, optional resampling."""

    def __init__(self, dims: list[tuple[int, int]], attention: bool, resample: nn.Module | None, kind: str):
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock1d(i, o) for i, o in dims)
        self.attn = nn.ModuleList(AttnBlock1d(o) for _, o in dims) if attention else nn.ModuleList()
        if resample is not None:
            setattr(self, kind, resample)
        self.resample_kind = kind if resample is not None else None

    def run_blocks(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
            h = h.clamp(-_CLIP_ACT, _CLIP_ACT)
        return h

    def resample(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.resample_kind is None else getattr(self, self.resample_kind)(h)


def _fold_convolutions(net: nn.Module) -> None:
    """Fold every magnitude-preserving convolution once for inference; the output one takes the gain."""
    for module in net.modules():
        if isinstance(module, MPConv1d) and module is not net.conv_out:
            module.fold()
    net.conv_out.fold(gain=net.learnable_gain.detach() + 1)


class VAEDecoder(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        levels = len(cfg.ch_mult)
        up_levels = {i + 1 for i in cfg.down_layers}
        block_in = cfg.hidden_dim * cfg.ch_mult[-1]
        self.conv_in = MPConv1d(cfg.embed_dim, block_in, 3)
        self.mid = _Middle(block_in)
        up: list[_Level] = []
        for level in reversed(range(levels)):
            block_out = cfg.hidden_dim * cfg.ch_mult[level]
            dims = [(block_in if j == 0 else block_out, block_out) for j in range(cfg.num_res_blocks + 1)]
            block_in = block_out
            resample = Upsample1d(block_in) if level in up_levels else None
            up.insert(0, _Level(dims, level in cfg.attn_layers, resample, "upsample"))
        self.up = nn.ModuleList(up)
        self.conv_out = MPConv1d(block_in, cfg.data_dim, 3)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def fold(self) -> None:
        _fold_convolutions(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z)).clamp(-_CLIP_ACT, _CLIP_ACT)
        for level in reversed(self.up):
            h = level.resample(level.run_blocks(h))
        return self.conv_out(mp_silu(h))


class VAEEncoder(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.conv_in = MPConv1d(cfg.data_dim, cfg.hidden_dim, 3)
        in_mult = (1, *cfg.ch_mult)
        down: list[_Level] = []
        block_in = cfg.hidden_dim
        for level, mult in enumerate(cfg.ch_mult):
            block_in = cfg.hidden_dim * in_mult[level]
            block_out = cfg.hidden_dim * mult
            dims = [(block_in if j == 0 else block_out, block_out) for j in range(cfg.num_res_blocks)]
            block_in = block_out
            resample = Downsample1d(block_in) if level in cfg.down_layers else None
            down.append(_Level(dims, level in cfg.attn_layers, resample, "downsample"))
        self.down = nn.ModuleList(down)
        self.mid = _Middle(block_in)
        self.conv_out = MPConv1d(block_in, 2 * cfg.embed_dim, 3)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def fold(self) -> None:
        _fold_convolutions(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level.resample(level.run_blocks(h))
        h = self.mid(h).clamp(-_CLIP_ACT, _CLIP_ACT)
        return self.conv_out(mp_silu(h))


class MelVAE(nn.Module):
    """Decoder (and optionally encoder) plus the mel statistics the latent space was trained on.

    ``data_mean`` / ``data_std`` start as an identity normalisation and are
    overwritten by the checkpoint, which always stores them.
    """

    def __init__(self, cfg: VAEConfig, *, with_encoder: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("data_mean", torch.zeros(1, cfg.data_dim, 1))
        self.register_buffer("data_std", torch.ones(1, cfg.data_dim, 1))
        self.encoder = VAEEncoder(cfg) if with_encoder else None
        self.decoder = VAEDecoder(cfg)

    def fold(self) -> None:
        """Precompute the normalised weights once (the module is inference-only afterwards)."""
        self.decoder.fold()
        if self.encoder is not None:
            self.encoder.fold()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, embed_dim, L)`` latent -> ``(B, n_mels, 2L)`` log-mel."""
        return self.decoder(z) * self.data_std + self.data_mean

    def encode_moments(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` log-mel -> ``(B, 2*embed_dim, T/2)``: mean then log-variance."""
        if self.encoder is None:
            raise RuntimeError("this VAE was built without its encoder")
        return self.encoder((mel - self.data_mean) / self.data_std)
