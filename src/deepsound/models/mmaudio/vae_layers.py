"""Magnitude-preserving building blocks of MMAudio's mel VAE (EDM2 style).

The VAE was trained with *forced* weight normalisation: every convolution
stores an unnormalised weight and divides it by its per-output-channel norm on
the fly. At inference the normalised weight never changes, so
:meth:`MPConv1d.fold` computes it once and the forward pass is a plain
convolution. Parameter names follow the published checkpoints
(``conv1.weight``, ``nin_shortcut.weight``, ``qkv.weight`` ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_SILU_GAIN = 0.596  # std of silu(x) for unit-normal x: keeps activations at unit magnitude
_RESIDUAL_T = 0.3  # blend weight of the residual branch in every block


def unit_normalize(x: torch.Tensor, dim: int | tuple[int, ...], eps: float = 1e-4) -> torch.Tensor:
    """Scale ``x`` to unit RMS over ``dim`` (norm computed in float32 for low-precision inputs)."""
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    norm = torch.linalg.vector_norm(x, dim=dims, keepdim=True, dtype=torch.float32)
    # norm / sqrt(count) is the RMS; add eps after scaling, as the trained model did.
    norm = torch.add(eps, norm, alpha=math.sqrt(norm.numel() / x.numel()))
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x) / _SILU_GAIN


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = _RESIDUAL_T) -> torch.Tensor:
    """Blend two unit-magnitude signals so that the result keeps unit magnitude."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


class MPConv1d(nn.Module):
    """Bias-free 1-D convolution with forced weight normalisation ('same' padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size))
        self.folded = False

    @torch.no_grad()
    def fold(self, gain: torch.Tensor | float = 1.0) -> None:
        """Replace the stored weight by its normalised (and ``gain``-scaled) inference value, once."""
        if self.folded:
            return
        w = self.weight.to(torch.float32)
        w = unit_normalize(w, dim=tuple(range(1, w.ndim)))
        w = w / math.sqrt(w[0].numel())
        w = w.to(self.weight.dtype)
        # The trained model scales the normalised weight by the gain at every call; doing the
        # same product once gives the same numbers.
        self.weight.copy_(w * gain)
        self.folded = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.folded:
            raise RuntimeError("MPConv1d.fold() must run before inference")
        return F.conv1d(x, self.weight, padding=self.weight.shape[-1] // 2)


class ResnetBlock1d(nn.Module):
    """Pixel-normalised residual block: norm -> silu -> conv -> silu -> conv, blended with the input."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = MPConv1d(in_dim, out_dim, kernel_size)
        self.conv2 = MPConv1d(out_dim, out_dim, kernel_size)
        self.nin_shortcut = MPConv1d(in_dim, out_dim, 1) if in_dim != out_dim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = unit_normalize(x, dim=1)
        h = self.conv2(mp_silu(self.conv1(mp_silu(x))))
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return mp_sum(x, h)


class AttnBlock1d(nn.Module):
    """Single-head self-attention over time with cosine-normalised queries, keys and values."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.qkv = MPConv1d(channels, channels * 3, 1)
        self.proj_out = MPConv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, length = x.shape
        # channel index c*3 + j holds component j (q, k, v) of feature c
        y = self.qkv(x).reshape(b, 1, -1, 3, length)
        q, k, v = unit_normalize(y, dim=2).unbind(3)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        h = h.transpose(-1, -2).reshape(b, -1, length)
        return mp_sum(x, self.proj_out(h))


class Upsample1d(nn.Module):
    """Nearest-neighbour x2 in time followed by a 3-tap convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = MPConv1d(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest-exact"))


class Downsample1d(nn.Module):
    """1x1 conv, average-pool by 2, 1x1 conv (the encoder's only time reduction)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = MPConv1d(channels, channels, 1)
        self.conv2 = MPConv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.avg_pool1d(self.conv1(x), kernel_size=2, stride=2))
