"""ImageBind's audio front end as av-benchmark runs it: three 2 s clips, Kaldi fbank, normalisation.

``audio_clips(wav)`` turns ``(C, T)`` float32 at 16 kHz into the ``(3, 1, 128, 204)``
input of the audio tower, reproducing ``ImageBindAudioDataset.load_and_transform_audio_data``:

* Clip times come from pytorchvideo's ``ConstantClipsPerVideoSampler(2, 3)`` at
  the commit ImageBind pins (ae9cfc6e): starts ``k * max(D - 2, 0) / 2`` for
  k = 0, 1, 2 (D = T / 16000, a float, made exact as a Fraction), sample
  indices ``int(t * 16000)`` of the exact fractions. (PyPI's pytorchvideo 0.1.5
  predates that commit and spaces the clips by ``max(D - 2, 0) / 3``, so the
  last 2 s are never seen; an environment with it installed computes other
  numbers.) Clips of audio shorter than 6 s overlap; shorter than 2 s, all
  three are the whole file.
* ``waveform -= waveform.mean()`` runs *in place on a view* of the file's
  waveform, so where clips overlap a later clip sees samples already shifted
  by an earlier clip's mean. That is what the published numbers were computed
  with, so it is reproduced (on a copy: the caller's tensor is not touched).
  The mean is over all channels; the fbank then reads channel 0 only.
* Kaldi fbank (``torchaudio.compliance.kaldi.fbank`` with ``htk_compat=True,
  use_energy=False, window_type="hanning", num_mel_bins=128, dither=0,
  frame_length=25, frame_shift=10``; defaults otherwise: snip edges, per-frame
  DC removal, pre-emphasis 0.97, 512-point FFT, power spectrum, Kaldi mel banks
  from 20 Hz to Nyquist, log floored at float32 epsilon), ported here because
  torchaudio is not a dependency of the project.
* Zero-pad (in the log domain) or cut to 204 frames, then ``(x + 4.268) / 9.138``.

A file shorter than one 25 ms frame has no fbank frame at all (the official
code then divides by zero); it raises :class:`MediaError` instead.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F

from deepsound.errors import MediaError
from deepsound.models.kaldi import fbank

SAMPLE_RATE = 16000
CLIP_SECONDS = 2
CLIPS = 3
MEL_BINS = 128
TARGET_FRAMES = 204
MEAN = -4.268
STD = 9.138
FRAME = 400  # 25 ms
SHIFT = 160  # 10 ms
FFT = 512
PREEMPHASIS = 0.97
LOW_FREQ = 20.0


def clip_bounds(samples: int, rate: int = SAMPLE_RATE) -> list[tuple[int, int]]:
    """Sample ranges of the three clips, as the official sampler and slicing compute them."""
    duration = samples / rate
    longest_start = Fraction(max(duration - CLIP_SECONDS, 0))
    step = Fraction(longest_start, CLIPS - 1)
    bounds = []
    for k in range(CLIPS):
        start = step * k
        bounds.append((int(start * rate), int((start + CLIP_SECONDS) * rate)))
    return bounds


def kaldi_fbank(signal: torch.Tensor) -> torch.Tensor:
    """(T,) float -> (frames, 128) log mel energies with ImageBind's Kaldi options (Hann window),
    in the signal's precision (float32 as the official code; float64 for rounding checks)."""
    return fbank(
        signal,
        num_mel_bins=MEL_BINS,
        sample_rate=SAMPLE_RATE,
        preemphasis=PREEMPHASIS,
        window="hanning",
        dtype=torch.float64 if signal.dtype == torch.float64 else torch.float32,
    )


def audio_clips(
    wav: torch.Tensor, rate: int = SAMPLE_RATE, precision: torch.dtype = torch.float32
) -> torch.Tensor:
    """(C, T) float32 at 16 kHz -> (3, 1, 128, 204) normalised fbank clips for the audio tower.

    ``precision`` float32 is the official computation; float64 gives the value its rounding
    approximates (tests bound the CPU-dependent drift with it)."""
    if wav.ndim == 1:
        wav = wav[None]
    if rate != SAMPLE_RATE:
        raise ValueError(f"ImageBind audio must be {SAMPLE_RATE} Hz (got {rate}); resample first")
    if wav.shape[-1] < FRAME:
        raise MediaError(
            f"audio too short for ImageBind: {wav.shape[-1]} samples, need one 25 ms frame ({FRAME})"
        )
    wav = wav.to(precision).clone()
    out = []
    for start, end in clip_bounds(wav.shape[-1], rate):
        clip = wav[:, start:end]
        clip -= clip.mean()  # in place on the shared copy, as the official loader does
        fbank = kaldi_fbank(clip[0]).T  # (128, frames)
        gap = TARGET_FRAMES - fbank.shape[1]
        fbank = F.pad(fbank, (0, gap)) if gap > 0 else fbank[:, :TARGET_FRAMES]
        out.append(((fbank - MEAN) / STD).unsqueeze(0))
    return torch.stack(out)
