"""Log-mel spectrogram in the exact form MMAudio's VAE was trained on.

Only needed to *encode* audio into latents. The mel filterbank is the Slaney
one (Slaney mel scale, area-normalised triangles), computed here so that the
package does not depend on librosa; 16 kHz uses log10, 44.1 kHz natural log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

_F_SP = 200.0 / 3  # Slaney scale: linear below 1 kHz ...
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0  # ... logarithmic above


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    mel = f / _F_SP
    high = f >= _MIN_LOG_HZ
    mel[high] = _MIN_LOG_MEL + np.log(f[high] / _MIN_LOG_HZ) / _LOGSTEP
    return mel


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f = m * _F_SP
    high = m >= _MIN_LOG_MEL
    f[high] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (m[high] - _MIN_LOG_MEL))
    return f


def slaney_mel_filterbank(
    sample_rate: float, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters, each normalised to unit area in Hz."""
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0], n_mels + 2)
    )
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, fft_freqs.size), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]
    return weights


@dataclass(frozen=True)
class MelParams:
    sample_rate: int
    n_fft: int
    n_mels: int
    hop: int
    win: int
    fmin: float
    fmax: float
    log10: bool


MEL_16K = MelParams(16_000, 1024, 80, 256, 1024, 0.0, 8_000.0, log10=True)
MEL_44K = MelParams(44_100, 2048, 128, 512, 2048, 0.0, 44_100 / 2, log10=False)


class MelSpectrogram(nn.Module):
    """Waveform ``(B, samples)`` in [-1, 1] -> log-mel ``(B, n_mels, samples // hop)``."""

    def __init__(self, params: MelParams) -> None:
        super().__init__()
        self.params = params
        basis = slaney_mel_filterbank(
            params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax
        )
        self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(params.win), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        p = self.params
        # always float32: STFT and log need the precision even when the model runs in bfloat16
        x = waveform.float().clamp(-1.0, 1.0)
        # symmetric reflection so that frame i is centred on sample i*hop + hop/2
        pad = (p.n_fft - p.hop) // 2
        x = torch.nn.functional.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            x,
            p.n_fft,
            hop_length=p.hop,
            win_length=p.win,
            window=self.window.float(),
            center=False,
            return_complex=True,
        )
        spec = torch.view_as_real(spec)
        magnitude = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)
        mel = torch.matmul(self.mel_basis.float(), magnitude).clamp(min=1e-5)
        return torch.log10(mel) if p.log10 else torch.log(mel)


def mel_spectrogram_for(mode: str) -> MelSpectrogram:
    return MelSpectrogram(MEL_16K if mode == "16k" else MEL_44K)
