"""The spectrogram HTDemucs's graph reads and the inverse of what it writes (Demucs's conventions).

Why by hand: the published ONNX export leaves the STFT and its inverse out of
the graph (ONNX had no complex STFT when it was made), so the caller must give
exactly what Demucs's ``HTDemucs._spec``/``_magnitude`` compute and undo exactly
what ``_mask``/``_ispec`` do. The numbers, from Demucs: a 4096-point Hann STFT
with hop 1024, ``normalized=True``, the track reflect-padded by three half-hops
on the left and up to a whole number of hops plus the same on the right, the
last frequency bin dropped and two frames trimmed each side, so that the
spectrogram has exactly ``ceil(length / 1024)`` frames; complex values as two
channels (real, imaginary) per audio channel. ``torch.stft`` does the transform.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

HOP = 1024
NFFT = 4 * HOP
_EDGE = HOP // 2 * 3  # the reflect padding on each side, in samples


def spectrogram(wave: torch.Tensor) -> torch.Tensor:
    """Complex spectrogram ``(..., 2048, ceil(n / 1024))`` of ``wave`` ``(..., n)``."""
    *lead, n = wave.shape
    frames = math.ceil(n / HOP)
    flat = wave.reshape(-1, n)
    padded = F.pad(flat[None], (_EDGE, _EDGE + frames * HOP - n), mode="reflect")[0]
    z = torch.stft(
        padded, NFFT, HOP, window=torch.hann_window(NFFT, dtype=wave.dtype), win_length=NFFT,
        normalized=True, center=True, return_complex=True, pad_mode="reflect",
    )  # fmt: skip
    z = z[:, :-1, 2 : 2 + frames]
    return z.reshape(*lead, *z.shape[-2:])


def as_channels(z: torch.Tensor) -> torch.Tensor:
    """``(B, C, F, T)`` complex → ``(B, 2C, F, T)`` real: each channel's real part, then its imaginary."""
    b, c, f, t = z.shape
    return torch.view_as_real(z).permute(0, 1, 4, 2, 3).reshape(b, 2 * c, f, t)


def from_channels(x: torch.Tensor) -> torch.Tensor:
    """The graph's ``(B, S, 2C, F, T)`` real output → ``(B, S, C, F, T)`` complex (``as_channels`` undone)."""
    b, s, c2, f, t = x.shape
    return torch.view_as_complex(x.reshape(b, s, c2 // 2, 2, f, t).permute(0, 1, 2, 4, 5, 3).contiguous())


def inverse(z: torch.Tensor, length: int) -> torch.Tensor:
    """``(..., 2048, T)`` complex → ``(..., length)``: the spectrogram's padding undone, then the inverse STFT."""
    z = F.pad(F.pad(z, (0, 0, 0, 1)), (2, 2))
    *lead, f, t = z.shape
    total = HOP * math.ceil(length / HOP) + 2 * _EDGE
    x = torch.istft(
        z.reshape(-1, f, t), NFFT, HOP, window=torch.hann_window(NFFT, dtype=z.real.dtype), win_length=NFFT,
        normalized=True, length=total, center=True,
    )  # fmt: skip
    return x.reshape(*lead, total)[..., _EDGE : _EDGE + length]
