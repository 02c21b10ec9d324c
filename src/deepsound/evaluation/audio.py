"""Audio exactly as av-benchmark feeds its feature models, without torchaudio.

The paper's numbers (FD, KL, IS, DeSync, IB-score) come from av-benchmark, so a
feature computed here must see the very samples av-benchmark's data sets produce:

* :func:`load_for_features` is its ``AudioDataset.read_from_file``: decode, average
  the channels, subtract the mean (DC), resample with a kernel precomputed in
  float64 (``torchaudio.transforms.Resample``'s default), crop to the clip length
  (10 s, the paper's setting; never padded: PaSST pads on its own).
* :func:`load_for_synchformer` is its ``SynchformerAudioDataset``: channel mean,
  no DC removal, the same float64-kernel resampler, and exactly ``duration``
  seconds. av-benchmark answers a too-short file by silently loading the *next*
  file instead; here it is a :class:`~deepsound.errors.MediaError` naming the file.
* :func:`load_for_imagebind` is ImageBind's loader as av-benchmark calls it: all
  channels kept, ``torchaudio.functional.resample`` (its kernel built in the
  waveform's float32), no crop (ImageBind samples its own 2 s clips; note that
  Kaldi's ``fbank`` then reads channel 0 only, no mean, of a stereo file).

:func:`sinc_resample` is a port of torchaudio's band-limited sinc resampler
(Hann-windowed, 6 zero crossings, roll-off 0.99) with both kernel precisions it
uses: ``"float64"`` (computed in double, stored float32: the transform) and
``"float32"`` (computed in the input's float32: the functional form). The two
differ by ~1e-7, which is why both exist. torchaudio is not a dependency of the
project (its wheels pin one torch build each), so the arithmetic is reproduced
operation by operation, including the float32 rounding of the output length.

Decoding (:func:`decode`) reads WAV/FLAC with libsndfile and everything else (the
soundtrack of a video, for one) with :func:`deepsound.media.read_audio` (PyAV); either
way 16-bit PCM becomes ``x / 32768`` exactly as torchaudio's loaders give it. To feed
several models from one file, decode once and call :func:`prepare_for_features` per rate.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch

from deepsound.errors import MediaError
from deepsound.media import read_audio

KernelPrecision = Literal["float64", "float32"]

DEFAULT_DURATION = 10.0
"""Seconds per clip: the paper evaluates 10-second clips (av-benchmark's ``--audio_length 10``)."""

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99


@lru_cache(maxsize=16)
def _kernel_cpu(orig_freq: int, new_freq: int, precision: KernelPrecision) -> tuple[torch.Tensor, int]:
    gcd = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // gcd, new_freq // gcd
    base_freq = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_FILTER_WIDTH * orig / base_freq)
    # torchaudio builds the tap positions in float64 for the transform, but the output
    # phases j/new come from an integer arange divided in the default float32 either way.
    idx_dtype = torch.float64 if precision == "float64" else torch.float32
    idx = torch.arange(-width, width + orig, dtype=idx_dtype)[None, None] / orig
    if precision == "float64":
        phase = torch.arange(0, -new, -1)[:, None, None] / new
    else:
        phase = torch.arange(0, -new, -1, dtype=torch.float32)[:, None, None] / new
    t = phase + idx
    t *= base_freq
    t = t.clamp_(-LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH)
    window = torch.cos(t * math.pi / LOWPASS_FILTER_WIDTH / 2) ** 2
    t *= math.pi
    scale = base_freq / orig
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * scale
    return kernels.to(torch.float32), width


def resample_kernel(
    orig_freq: int, new_freq: int, precision: KernelPrecision = "float64"
) -> tuple[torch.Tensor, int]:
    """The ``(new, 1, 2*width + orig)`` polyphase kernel and its half-width, rates reduced by their gcd."""
    if precision not in ("float64", "float32"):
        raise ValueError(f"kernel precision must be 'float64' or 'float32', not {precision!r}")
    kernel, width = _kernel_cpu(int(orig_freq), int(new_freq), precision)
    return kernel.clone(), width


def sinc_resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    precision: KernelPrecision = "float64",
) -> torch.Tensor:
    """Resample ``waveform`` (``(..., time)``, floating) from ``orig_freq`` to ``new_freq`` Hz.

    Output length is ``ceil(new * time / orig)`` as torchaudio computes it (in float32).
    """
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError("sample rates must be positive")
    if not waveform.is_floating_point():
        raise TypeError(f"expected a floating waveform, got {waveform.dtype}")
    if orig_freq == new_freq:
        return waveform
    gcd = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    kernel, width = resample_kernel(orig_freq, new_freq, precision)
    kernel = kernel.to(device=waveform.device, dtype=waveform.dtype)
    shape = waveform.shape
    flat = waveform.reshape(-1, shape[-1])
    length = flat.shape[-1]
    padded = torch.nn.functional.pad(flat, (width, width + orig))
    out = torch.nn.functional.conv1d(padded[:, None], kernel, stride=orig)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    target = int(torch.ceil(torch.as_tensor(new * length / orig, dtype=torch.float32)).item())
    return out[..., :target].reshape(*shape[:-1], -1)


_SOUNDFILE_SUFFIXES = (".wav", ".flac")


def decode(path: Path | str) -> tuple[torch.Tensor, int]:
    """All channels of the first audio stream, float32 ``(channels, samples)``, and its rate.

    WAV and FLAC (what av-benchmark reads) go through libsndfile, several times faster
    than a PyAV decode and giving the same floats (integer PCM divided by its full
    scale); anything else, and any file libsndfile refuses, through
    :func:`deepsound.media.read_audio`, which also names the problem when there is one.
    """
    path = Path(path)
    if path.suffix.lower() in _SOUNDFILE_SUFFIXES:
        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError):
            pass
        else:
            if data.shape[0] > 0:
                return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate)
    audio = read_audio(path)
    return torch.from_numpy(audio.waveform), audio.sample_rate


def prepare_for_features(
    waveform: torch.Tensor,
    sample_rate: int,
    target_rate: int,
    duration: float | None = DEFAULT_DURATION,
) -> torch.Tensor:
    """av-benchmark's ``AudioDataset`` on decoded samples: mono mean, minus DC, resample, crop.

    Returns float32 ``(samples,)``; shorter clips stay short.
    """
    mono = waveform.mean(dim=0) if waveform.dim() == 2 else waveform
    mono = mono - mono.mean()
    if sample_rate != target_rate:
        mono = sinc_resample(mono, sample_rate, target_rate, "float64")
    if duration is not None:
        mono = mono[: int(target_rate * duration)]
    return mono


def load_for_features(
    path: Path | str, sample_rate: int, duration: float | None = DEFAULT_DURATION
) -> torch.Tensor:
    """Decode ``path`` and prepare it as av-benchmark does for PANNs (16 kHz), VGGish (16 kHz), PaSST (32 kHz)."""
    waveform, rate = decode(path)
    return prepare_for_features(waveform, rate, sample_rate, duration)


def load_feature_inputs(
    path: Path | str, duration: float | None = DEFAULT_DURATION, rates: tuple[int, ...] = (16000, 32000)
) -> dict[int, torch.Tensor]:
    """One decode, every rate the audio models need: ``{16000: PANNs/VGGish input, 32000: PaSST input}``."""
    waveform, rate = decode(path)
    return {r: prepare_for_features(waveform, rate, r, duration) for r in rates}


def load_for_synchformer(
    path: Path | str, duration: float = DEFAULT_DURATION, sample_rate: int = 16000
) -> torch.Tensor:
    """Exactly ``duration`` seconds at 16 kHz, channel mean, no DC removal.

    A file shorter than ``duration`` is an error here (av-benchmark would quietly
    use the following file's audio in its place).
    """
    waveform, rate = decode(path)
    mono = waveform.mean(dim=0)
    if rate != sample_rate:
        mono = sinc_resample(mono, rate, sample_rate, "float64")
    expected = int(sample_rate * duration)
    mono = mono[:expected]
    if mono.shape[0] != expected:
        raise MediaError(
            f"{path}: audio is {mono.shape[0] / sample_rate:.3f} s, shorter than the "
            f"{duration:g} s the synchronisation model needs"
        )
    return mono


def load_for_imagebind(path: Path | str, sample_rate: int = 16000) -> torch.Tensor:
    """All channels resampled with the float32 kernel, uncropped: ``(channels, samples)``."""
    waveform, rate = decode(path)
    if rate != sample_rate:
        waveform = sinc_resample(waveform, rate, sample_rate, "float32")
    return waveform


__all__ = [
    "DEFAULT_DURATION",
    "KernelPrecision",
    "decode",
    "load_feature_inputs",
    "load_for_features",
    "load_for_imagebind",
    "load_for_synchformer",
    "prepare_for_features",
    "resample_kernel",
    "sinc_resample",
]
