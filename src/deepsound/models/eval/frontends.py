"""Spectral front ends of the audio evaluation models, as numbers identical to the originals.

Each model was trained on one exact spectrogram, and a metric computed on a
slightly different one is a different metric. So every filter bank here is the
original's formula evaluated in the original's precision and order:

* :func:`slaney_mel_filterbank` - librosa's ``filters.mel`` (Slaney scale and
  area normalisation, float32 result), which torchlibrosa stores as PANNs' ``melW``;
* :func:`dft_conv_kernels` - torchlibrosa's STFT-as-convolution kernels (periodic
  Hann times the DFT matrix), stored in PANNs' checkpoint as ``conv_real/conv_imag``;
* :func:`vggish_examples` - the VGGish reference ``waveform_to_examples`` (numpy,
  float64 throughout) on torch float64, so it batches and runs on a GPU.

The PANNs kernels are loaded from the checkpoint when one is given; the builders
here only give a freshly constructed model the same values.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# --- PANNs (torchlibrosa) -------------------------------------------------------------


def _hz_to_mel_slaney(freq: np.ndarray | float) -> np.ndarray:
    freq = np.asanyarray(freq, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = freq / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(
        freq >= min_log_hz, min_log_mel + np.log(np.maximum(freq, 1e-300) / min_log_hz) / logstep, mels
    )


def _mel_to_hz_slaney(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


def slaney_mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """``(n_fft // 2 + 1, n_mels)`` float32: librosa's default mel matrix, transposed as PANNs stores it."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, len(fftfreqs)), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return torch.from_numpy(np.ascontiguousarray(weights.T))


def dft_conv_kernels(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary ``(n_fft//2 + 1, 1, n_fft)`` float32 kernels of a periodic-Hann STFT."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    x, y = np.meshgrid(np.arange(n_fft), np.arange(n_fft))
    dft = np.power(np.exp(-2 * np.pi * 1j / n_fft), x * y)
    bins = n_fft // 2 + 1
    basis = dft[:, :bins] * window[:, None]
    real = torch.tensor(np.real(basis).T, dtype=torch.float32)[:, None, :]
    imag = torch.tensor(np.imag(basis).T, dtype=torch.float32)[:, None, :]
    return real, imag


# --- PaSST (Kaldi mel banks) ----------------------------------------------------------


# --- VGGish ---------------------------------------------------------------------------

VGGISH_RATE = 16000
VGGISH_WINDOW = 400  # 25 ms
VGGISH_HOP = 160  # 10 ms
VGGISH_FFT = 512
VGGISH_BANDS = 64
VGGISH_EXAMPLE_FRAMES = 96  # 0.96 s examples, no overlap
VGGISH_LOG_OFFSET = 0.01


def _hertz_to_mel_htk(freq: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asanyarray(freq, dtype=np.float64) / 700.0)


def vggish_mel_matrix(
    num_mel_bins: int = VGGISH_BANDS,
    num_spectrogram_bins: int = VGGISH_FFT // 2 + 1,
    sample_rate: int = VGGISH_RATE,
    lower_edge_hertz: float = 125.0,
    upper_edge_hertz: float = 7500.0,
) -> np.ndarray:
    """``(bins, mel)`` float64 HTK-scale triangles of the VGGish reference (DC row zeroed)."""
    nyquist = sample_rate / 2.0
    bins_mel = _hertz_to_mel_htk(np.linspace(0.0, nyquist, num_spectrogram_bins))
    edges = np.linspace(
        _hertz_to_mel_htk(lower_edge_hertz), _hertz_to_mel_htk(upper_edge_hertz), num_mel_bins + 2
    )
    matrix = np.empty((num_spectrogram_bins, num_mel_bins))
    for i in range(num_mel_bins):
        lower, center, upper = edges[i : i + 3]
        matrix[:, i] = np.maximum(
            0.0, np.minimum((bins_mel - lower) / (center - lower), (upper - bins_mel) / (upper - center))
        )
    matrix[0, :] = 0.0
    return matrix


def vggish_examples(waveform: torch.Tensor) -> torch.Tensor:
    """16 kHz ``(B, T)`` waveforms -> ``(B, N, 96, 64)`` float32 log-mel examples.

    ``N = (frames - 96) // 96 + 1`` with ``frames = (T - 400) // 160 + 1``; a clip
    under 0.975 s yields no example (``N = 0``), as in the reference.
    """
    if waveform.dim() != 2:
        raise ValueError(f"expected (batch, samples), got {tuple(waveform.shape)}")
    if waveform.shape[-1] < VGGISH_WINDOW:
        raise ValueError(f"a VGGish input needs at least {VGGISH_WINDOW} samples, got {waveform.shape[-1]}")
    x = waveform.to(torch.float64)
    frames = x.unfold(-1, VGGISH_WINDOW, VGGISH_HOP)
    n = torch.arange(VGGISH_WINDOW, dtype=torch.float64, device=x.device)
    window = 0.5 - 0.5 * torch.cos(2 * math.pi / VGGISH_WINDOW * n)
    spectrum = torch.fft.rfft(frames * window, n=VGGISH_FFT).abs()
    mel = torch.from_numpy(vggish_mel_matrix()).to(x.device)
    log_mel = torch.log(spectrum @ mel + VGGISH_LOG_OFFSET)
    batch, num_frames = log_mel.shape[:2]
    if num_frames < VGGISH_EXAMPLE_FRAMES:
        return log_mel.new_zeros(batch, 0, VGGISH_EXAMPLE_FRAMES, VGGISH_BANDS).float()
    examples = log_mel.unfold(1, VGGISH_EXAMPLE_FRAMES, VGGISH_EXAMPLE_FRAMES)
    return examples.transpose(-1, -2).float().contiguous()
