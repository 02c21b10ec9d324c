"""Kaldi-style log-mel filter banks, as ``torchaudio.compliance.kaldi.fbank`` computes them.

Three models of this project read Kaldi filter banks: VideoLLaMA2's BEATs (128 bins, Povey
window), ImageBind's audio tower (128 bins, Hann window) and PaSST (its own mel front end
over Kaldi's triangles). torchaudio is the only library that carries that exact recipe, and
it is a heavy optional dependency the rest of the package does not need, so the few lines
are written here once, in plain torch and in torchaudio's float32 order of operations; the
golden tests compare them with torchaudio's output. Only the options those models use are
implemented (snip_edges framing, DC removal, pre-emphasis, no dither, no energy, no VTLN).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

_EPSILON = torch.finfo(torch.float32).eps


def _mel(freq: torch.Tensor | float) -> torch.Tensor | float:
    if isinstance(freq, torch.Tensor):
        return 1127.0 * (1.0 + freq / 700.0).log()
    return 1127.0 * math.log(1.0 + freq / 700.0)


def mel_banks(
    num_bins: int, padded_window: int, sample_rate: float, low_freq: float = 20.0, high_freq: float = 0.0
) -> torch.Tensor:
    """``(num_bins, padded_window // 2)`` float32 triangles on Kaldi's mel scale (``high_freq`` ≤ 0:
    that far below Nyquist, as Kaldi reads it)."""
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(f"bad mel range {low_freq}..{high_freq} Hz for Nyquist {nyquist} Hz")
    fft_bin_width = sample_rate / padded_window
    mel_low = _mel(low_freq)
    delta = (_mel(high_freq) - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins).unsqueeze(1)
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    mel = _mel(fft_bin_width * torch.arange(padded_window / 2)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    return torch.max(torch.zeros(1), torch.min(up, down))


def fbank(
    waveform: torch.Tensor,
    *,
    num_mel_bins: int = 128,
    sample_rate: int = 16_000,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    preemphasis: float = 0.97,
    window: Literal["povey", "hanning"] = "povey",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(frames, num_mel_bins)`` log filter banks of the first channel of ``waveform`` (``(C, N)`` or
    ``(N,)``). Frames follow Kaldi's ``snip_edges`` rule: only whole windows, the first at sample 0.

    float32 is torchaudio's computation; ``dtype=torch.float64`` runs the same recipe (same
    float32 mel triangles and floor) without its rounding, which is how the tests measure how
    far a float32 result may drift between CPUs."""
    signal = (waveform if waveform.dim() == 1 else waveform[0]).to(dtype)
    length = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    padded = 1 << (length - 1).bit_length()
    if signal.numel() < length:
        return signal.new_zeros((0, num_mel_bins))
    frames = signal.unfold(0, length, shift)
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = F.pad(frames.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)
    frames = frames - preemphasis * previous[:, :-1]
    taper = torch.hann_window(length, periodic=False, device=signal.device, dtype=signal.dtype)
    frames = frames * (taper.pow(0.85) if window == "povey" else taper).unsqueeze(0)
    frames = F.pad(frames, (0, padded - length))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = F.pad(mel_banks(num_mel_bins, padded, float(sample_rate)), (0, 1)).to(signal.device, signal.dtype)
    energies = torch.mm(power, banks.T)
    return torch.max(energies, torch.tensor(_EPSILON, device=signal.device, dtype=signal.dtype)).log()
