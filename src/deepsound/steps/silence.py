"""Step 4: is the audio left after voice removal silent?

The paper's rule, reproduced number for number: mix the channels down to mono
by averaging, take the RMS of 2048-sample frames every 512 samples (frames
centred, the signal padded with zeros on both sides), convert to dB relative
to 1.0 with a floor of 1e-5 in amplitude and a dynamic range clamped to 80 dB
below the loudest frame, and call the audio silent when more than 90 % of the
frames lie below -50 dB. No resampling: frames are counted at the audio's own
rate, as the paper reads the file at its native rate.

It is written with numpy alone because the whole check is a few array
operations; pulling in librosa (and its import time) at run time for them is
not worth it. The tests compare it with librosa frame by frame.

The 80 dB clamp only matters for signals far outside [-1, 1] (e.g. a float
track that still holds 16-bit integer values): a frame 40 dB above full scale
lifts the floor to -40 dB, and then nothing counts as silent. It is kept
because the rule is defined with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepsound.audio import Audio
from deepsound.interfaces import SilenceReport

SILENCE_THRESHOLD_DB = -50.0  # the paper's rule: a frame is silent below −50 dB RMS …
SILENT_RATIO = 0.9  # … and the audio is silent when more than 90 % of its frames are


@dataclass
class SilenceSettings:
    """``[pipeline.silence]``: the paper's rule, shared by the RMS check and the MLLM check's fallback."""

    threshold_db: float = field(
        default=SILENCE_THRESHOLD_DB,
        metadata={"help": "A frame is silent below this RMS level (dB)", "flag": "--silence-threshold-db"},
    )
    ratio: float = field(
        default=SILENT_RATIO,
        metadata={"help": "Silent when more than this share of frames is", "flag": "--silence-ratio"},
    )


# frames handled per block: bounds the memory of the (frame_length, frames) view squared
_BLOCK_FRAMES = 2048


def frame_rms(samples: np.ndarray, frame_length: int = 2048, hop_length: int = 512) -> np.ndarray:
    """RMS of centred, zero-padded frames of a 1-D float32 signal.

    There are ``1 + len(samples) // hop_length`` frames, so even an empty or
    very short signal gives one (all-padding) frame. Each frame is averaged in
    float32 in the same layout as librosa, which keeps the result identical to
    it, not merely close.
    """
    if frame_length < 1 or hop_length < 1:
        raise ValueError(f"frame and hop length must be positive, got {frame_length}, {hop_length}")
    y = np.asarray(samples, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected a 1-D signal, got shape {y.shape}")
    half = frame_length // 2
    padded = np.pad(y, (half, half), mode="constant")
    if padded.size < frame_length:  # odd frame lengths below 2 samples of signal
        padded = np.pad(padded, (0, frame_length - padded.size), mode="constant")
    windows = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length]
    num_frames = windows.shape[0]
    out = np.empty(num_frames, dtype=np.float32)
    for start in range(0, num_frames, _BLOCK_FRAMES):
        block = windows[start : start + _BLOCK_FRAMES].T  # (frame_length, frames), strided like librosa
        power = np.mean(np.square(block, dtype=np.float32), axis=-2)
        out[start : start + block.shape[1]] = np.sqrt(power)
    return out


def amplitude_to_db(amplitude: np.ndarray, amin: float = 1e-5, top_db: float | None = 80.0) -> np.ndarray:
    """Amplitude to dB relative to 1.0, floored at ``amin`` and clamped to ``top_db`` below the peak."""
    if amin <= 0:
        raise ValueError(f"amin must be positive, got {amin}")
    if top_db is not None and top_db < 0:
        raise ValueError(f"top_db must be non-negative, got {top_db}")
    power = np.square(np.abs(np.asarray(amplitude)))
    db = 10.0 * np.log10(np.maximum(amin**2, power))
    if top_db is not None and db.size:
        db = np.maximum(db, db.max() - top_db)
    return db


class RmsSilenceDetector:
    """The paper's step-4 check on an in-memory :class:`Audio` (any rate, any channel count)."""

    name = "rms"

    def __init__(
        self,
        threshold_db: float = SILENCE_THRESHOLD_DB,
        silent_ratio: float = SILENT_RATIO,
        *,
        frame_length: int = 2048,
        hop_length: int = 512,
        top_db: float | None = 80.0,
        amin: float = 1e-5,
    ) -> None:
        if not 0.0 <= silent_ratio <= 1.0:
            raise ValueError(f"silent ratio must lie in [0, 1], got {silent_ratio}")
        self.threshold_db = float(threshold_db)
        self.silent_ratio = float(silent_ratio)
        self.frame_length = int(frame_length)
        self.hop_length = int(hop_length)
        self.top_db = top_db
        self.amin = float(amin)

    @classmethod
    def from_settings(cls, settings: SilenceSettings) -> RmsSilenceDetector:
        return cls(threshold_db=settings.threshold_db, silent_ratio=settings.ratio)

    def frame_db(self, audio: Audio) -> np.ndarray:
        """Per-frame level in dB of the mono mix, as the rule sees it."""
        mono = audio.to_mono().waveform[0]
        rms = frame_rms(mono, self.frame_length, self.hop_length)
        return amplitude_to_db(rms, amin=self.amin, top_db=self.top_db)

    def detect(self, audio: Audio, video: Path | None = None) -> SilenceReport:
        """``video`` is unused: the RMS rule listens to the audio only."""
        db = self.frame_db(audio)
        silent_frames = int(np.count_nonzero(db < self.threshold_db))
        ratio = silent_frames / db.size
        return SilenceReport(
            is_silent=bool(ratio > self.silent_ratio),
            silent_frame_ratio=float(ratio),
            evidence={
                "silent_frames": silent_frames,
                "num_frames": int(db.size),
                "threshold_db": self.threshold_db,
                "ratio_threshold": self.silent_ratio,
                "max_db": round(float(db.max()), 3),
                "frame_length": self.frame_length,
                "hop_length": self.hop_length,
                "top_db": self.top_db,
                "sample_rate": audio.sample_rate,
            },
        )
