"""Kaldi-style log-mel filter banks, as ``torchaudio.compliance.kaldi.fbank`` computes them.

VideoLLaMA2's audio path turns each waveform into 128-bin Kaldi filter banks
(25 ms Povey windows every 10 ms, DC removal, 0.97 pre-emphasis, 512-point
power spectrum, mel triangles from 20 Hz to Nyquist, natural log floored at
float32 epsilon). torchaudio is the only library that carries that exact
recipe, and it is a heavy optional dependency the rest of the package does not
need, so the few lines are written here in plain torch, in the same float32
order of operations; the golden test compares them with torchaudio's output.
Only the options the reference uses are implemented (no dither, no energy
term, no VTLN).
"""

from __future__ import annotations

import math

import torch

_EPSILON = torch.finfo(torch.float32).eps


def _mel(freq: torch.Tensor | float) -> torch.Tensor | float:
    if isinstance(freq, torch.Tensor):
        return 1127.0 * (1.0 + freq / 700.0).log()
    return 1127.0 * math.log(1.0 + freq / 700.0)


def mel_banks(num_bins: int, padded_window: int, sample_rate: float, low_freq: float = 20.0) -> torch.Tensor:
    """``(num_bins, padded_window // 2)`` triangular filters on the Kaldi mel scale."""
    nyquist = 0.5 * sample_rate
    fft_bin_width = sample_rate / padded_window
    mel_low, mel_high = _mel(low_freq), _mel(nyquist)
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins).unsqueeze(1)
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    mel = _mel(fft_bin_width * torch.arange(padded_window / 2)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    return torch.max(torch.zeros(1), torch.min(up, down))


def kaldi_fbank(
    waveform: torch.Tensor,
    *,
    num_mel_bins: int = 128,
    sample_rate: int = 16_000,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    preemphasis: float = 0.97,
) -> torch.Tensor:
    """``(frames, num_mel_bins)`` log filter banks of the first channel of ``waveform`` (``(C, N)`` or ``(N,)``).

    Frames are taken with Kaldi's ``snip_edges`` rule: only whole windows, the
    first starting at sample 0.
    """
    signal = waveform if waveform.dim() == 1 else waveform[0]
    signal = signal.to(torch.float32)
    window = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    padded = 1 << (window - 1).bit_length()
    if signal.numel() < window:
        return torch.empty(0, num_mel_bins)
    count = 1 + (signal.numel() - window) // shift
    frames = signal.as_strided((count, window), (shift * signal.stride(0), signal.stride(0)))
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.nn.functional.pad(frames.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)
    frames = frames - preemphasis * previous[:, :-1]
    povey = torch.hann_window(window, periodic=False, dtype=torch.float32).pow(0.85)
    frames = frames * povey.unsqueeze(0)
    frames = torch.nn.functional.pad(frames, (0, padded - window))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = mel_banks(num_mel_bins, padded, float(sample_rate)).to(torch.float32)
    banks = torch.nn.functional.pad(banks, (0, 1))
    energies = torch.mm(power, banks.T)
    return torch.max(energies, torch.tensor(_EPSILON)).log()
