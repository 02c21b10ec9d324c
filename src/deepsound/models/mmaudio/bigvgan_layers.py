"""Anti-aliased periodic activations and AMP residual blocks of BigVGAN.

BigVGAN applies its periodic SnakeBeta activation at twice the sample rate:
upsample x2 with a windowed-sinc low-pass, activate, low-pass and decimate.
The two 12-tap filters are fixed (not learned); they are computed here and
also stored in checkpoints as buffers, so they keep their published names
(``upsample.filter``, ``downsample.lowpass.filter``).

Convolutions are plain ``nn.Conv1d`` holding the *effective* weight: the
checkpoints' weight-norm pairs are folded into it at load time
(:func:`deepsound.models.mmaudio.vocoder.fold_weight_norm`), which is what
inference with weight norm computes anyway, once per call.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_FILTER_TAPS = 12
_RATIO = 2
_EPS = 1e-9  # keeps 1/beta finite


def kaiser_sinc_lowpass(cutoff: float, half_width: float, taps: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass with unit DC gain, shape ``(1, 1, taps)``.

    ``cutoff`` and ``half_width`` are fractions of the sample rate; the Kaiser
    beta follows the standard attenuation formula for the transition band.
    """
    if not 0 < cutoff <= 0.5:
        raise ValueError(f"cutoff {cutoff} must be in (0, 0.5]")
    half = taps // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(taps, beta=beta, periodic=False)
    # even length: taps sit half a sample off the centre
    t = torch.arange(-half, half) + 0.5 if taps % 2 == 0 else torch.arange(taps) - half
    h = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    h /= h.sum()
    return h.view(1, 1, taps)


def _periodic(x: torch.Tensor, freq: torch.Tensor, inv_mag: torch.Tensor) -> torch.Tensor:
    """``x + inv_mag * sin(freq * x)^2``.

    Without autograd the temporaries are updated in place: one buffer instead
    of four at twice the sample rate. Only the order of commutative products
    and sums differs, so the numbers are the same.
    """
    if torch.is_grad_enabled() and (x.requires_grad or freq.requires_grad or inv_mag.requires_grad):
        return x + inv_mag * torch.pow(torch.sin(x * freq), 2)
    y = x * freq
    y.sin_().pow_(2).mul_(inv_mag)
    return y.add_(x)


class SnakeBeta(nn.Module):
    """``x + sin(a x)^2 / b`` per channel, with ``a`` and ``b`` stored as logarithms when ``logscale``."""

    def __init__(self, channels: int, logscale: bool = True) -> None:
        super().__init__()
        init = torch.zeros(channels) if logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        self.beta = nn.Parameter(init.clone())
        self.logscale = logscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        alpha, beta = self.alpha.view(shape), self.beta.view(shape)
        if self.logscale:
            alpha, beta = alpha.exp(), beta.exp()
        return _periodic(x, alpha, 1.0 / (beta + _EPS))


class Snake(nn.Module):
    """``x + sin(a x)^2 / a`` per channel (the single-parameter variant)."""

    def __init__(self, channels: int, logscale: bool = True) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels) if logscale else torch.ones(channels))
        self.logscale = logscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.view((1, -1) + (1,) * (x.ndim - 2))
        if self.logscale:
            alpha = alpha.exp()
        return _periodic(x, alpha, 1.0 / (alpha + _EPS))


class Upsample2x(nn.Module):
    """Band-limited x2 upsampling: zero-stuffing convolved with the low-pass, edges replicated."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filter", kaiser_sinc_lowpass(0.5 / _RATIO, 0.6 / _RATIO, _FILTER_TAPS))
        self.pad = _FILTER_TAPS // _RATIO - 1
        self.crop_left = self.pad * _RATIO + (_FILTER_TAPS - _RATIO) // 2
        self.crop_right = self.pad * _RATIO + (_FILTER_TAPS - _RATIO + 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        # scaling the 12 taps by 2 instead of the output saves a pass and is exact (power of two)
        taps = (self.filter * _RATIO).expand(channels, -1, -1)
        y = F.conv_transpose1d(x, taps, stride=_RATIO, groups=channels)
        return y[..., self.crop_left : -self.crop_right]


class _LowPass(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filter", kaiser_sinc_lowpass(0.5 / _RATIO, 0.6 / _RATIO, _FILTER_TAPS))
        self.pad_left = _FILTER_TAPS // 2 - 1
        self.pad_right = _FILTER_TAPS // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(channels, -1, -1), stride=_RATIO, groups=channels)


class Downsample2x(nn.Module):
    """Low-pass then keep every second sample (the low-pass lives in ``.lowpass`` as in checkpoints)."""

    def __init__(self) -> None:
        super().__init__()
        self.lowpass = _LowPass()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class AntiAliasActivation(nn.Module):
    """Upsample x2 -> periodic activation -> downsample x2."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act
        self.upsample = Upsample2x()
        self.downsample = Downsample2x()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def make_activation(kind: str, channels: int, logscale: bool) -> AntiAliasActivation:
    if kind == "snakebeta":
        return AntiAliasActivation(SnakeBeta(channels, logscale))
    if kind == "snake":
        return AntiAliasActivation(Snake(channels, logscale))
    raise ValueError(f"unknown BigVGAN activation {kind!r} (expected 'snake' or 'snakebeta')")


def _same_padding(kernel_size: int, dilation: int) -> int:
    return (kernel_size * dilation - dilation) // 2


class AMPBlock1(nn.Module):
    """Three (activation, dilated conv, activation, conv) residual units."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], act: str, logscale: bool):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size, 1))
            for _ in dilations
        )
        self.activations = nn.ModuleList(
            make_activation(act, channels, logscale) for _ in range(2 * len(dilations))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            xt = c1(self.activations[2 * i](x))
            xt = c2(self.activations[2 * i + 1](xt))
            x = xt + x
        return x


class AMPBlock2(nn.Module):
    """One (activation, dilated conv) residual unit per dilation."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], act: str, logscale: bool):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d))
            for d in dilations
        )
        self.activations = nn.ModuleList(make_activation(act, channels, logscale) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, act in zip(self.convs, self.activations, strict=True):
            x = conv(act(x)) + x
        return x
