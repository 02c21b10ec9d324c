"""The fused speech gate: Silero VAD and TEN VAD on the same 16 kHz signal, one calibrated rule.

Why two detectors. The cascade judge asks the MLLM only where speech was heard,
so this gate decides what step 3 ever gets to remove. Measured on the project's
development set (``tools/build_vad_devset.py``: real Asterisk voices in real
soundtracks, music, engines, animals, crowds, Foley), Silero alone misses part
of the voice-overs once the bed is as loud as the voice and fires on a few
animals, horns and ambiences; TEN VAD hears more under loud beds but fires on
most engines, horns and animals when read on its own.

The rule (fitted on the tuning half only, ``benchmarks/bench_voice_over.py``
refits and prints it). Each 32 ms frame gets a fused probability

    p = sigmoid(w_s · logit(silero) + w_t · logit(ten) + w_c · (logit(ten) − median logit(ten)) + b)

where TEN's two 16 ms hops are max-pooled onto Silero's window, and the last
term is TEN's rise above its own level in this clip: a bed that keeps TEN high
throughout (water, engines) is discounted, a voice that lifts it is not. Speech
is a run of fused frames at or above ``threshold`` lasting ``min_speech_s``,
accumulated over the clip: a logistic combination of the two detectors'
evidence, calibrated on frame labels, then one decision on accumulated speech
time. Each detector's own reading goes into the report's evidence, so the trace
shows who heard what.

Steps never import models: the detectors come in through
:class:`FrameSpeechDetector`, the registry builds them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from deepsound.audio import Audio
from deepsound.interfaces import SpeechReport
from deepsound.speech_frames import report_from_segments, segments_from_probabilities

GATE_SAMPLE_RATE = 16000


@runtime_checkable
class FrameSpeechDetector(Protocol):
    """A voice activity detector that gives one speech probability per hop of a 16 kHz mono signal."""

    name: str
    hop_s: float
    threshold: float
    min_speech_s: float

    def frame_probabilities(self, mono: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class FusionRule:
    """The fitted combination (see the module docstring); defaults are the tuning half's fit."""

    w_primary: float = 0.0
    w_secondary: float = 0.0
    w_contrast: float = 0.0
    bias: float = 0.0
    threshold: float = 0.5
    min_speech_s: float = 0.25

    def fuse(self, primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
        """Fused frame probabilities from two aligned frame-probability tracks."""
        lp, ls = _logit(primary), _logit(secondary)
        contrast = ls - (np.median(ls) if ls.size else 0.0)
        z = self.w_primary * lp + self.w_secondary * ls + self.w_contrast * contrast + self.bias
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), 1e-4, 1 - 1e-4)
    return np.log(q / (1 - q))


def align(primary: np.ndarray, primary_hop: float, secondary: np.ndarray, secondary_hop: float) -> np.ndarray:
    """``secondary`` on ``primary``'s frames: the max over the finer hops inside each coarse one."""
    ratio = max(int(round(primary_hop / secondary_hop)), 1)
    n = primary.size
    padded = np.zeros(n * ratio, np.float32)
    take = min(secondary.size, n * ratio)
    padded[:take] = secondary[:take]
    if take < n * ratio and take > 0:
        padded[take:] = secondary[take - 1]
    return padded.reshape(n, ratio).max(axis=1)


class FusedSpeechDetector:
    """Speech heard by the fused rule over two frame-level detectors run on the same 16 kHz signal."""

    name = "fused-vad"

    def __init__(
        self,
        primary: FrameSpeechDetector,
        secondary: FrameSpeechDetector,
        rule: FusionRule | None = None,
        *,
        min_silence_s: float = 0.1,
        pad_s: float = 0.03,
    ) -> None:
        self.primary = primary
        self.secondary = secondary
        self.rule = rule or FusionRule()
        self.min_silence_s = float(min_silence_s)
        self.pad_s = float(pad_s)
        self.hop_s = primary.hop_s

    def frame_probabilities(self, mono: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fused, primary, secondary-aligned) probabilities on the primary's frames."""
        p = self.primary.frame_probabilities(mono)
        s = align(p, self.primary.hop_s, self.secondary.frame_probabilities(mono), self.secondary.hop_s)
        return self.rule.fuse(p, s), p, s

    def _segments(self, probs: np.ndarray, threshold: float, min_speech_s: float, duration: float) -> list:
        return segments_from_probabilities(
            probs, self.hop_s, threshold=threshold, min_speech_s=min_speech_s,
            min_silence_s=self.min_silence_s, pad_s=self.pad_s, duration=duration,
        )  # fmt: skip

    def _reading(self, detector: FrameSpeechDetector, probs: np.ndarray, duration: float) -> dict[str, Any]:
        """What one detector heard on its own (its own threshold and minimum run)."""
        segs = self._segments(probs, detector.threshold, detector.min_speech_s, duration)
        return {
            "detector": detector.name,
            "speech_seconds": round(sum(b - a for a, b in segs), 3),
            "segments": [[round(a, 3), round(b, 3)] for a, b in segs],
            "max_probability": round(float(probs.max()) if probs.size else 0.0, 4),
            "mean_probability": round(float(probs.mean()) if probs.size else 0.0, 4),
        }

    def detect(self, audio: Audio) -> SpeechReport:
        """Speech segments in seconds of ``audio`` (any rate, any channel count), with each detector's reading."""
        duration = audio.duration
        mono = audio.to_mono().resample(GATE_SAMPLE_RATE).waveform[0]
        if mono.size == 0:
            return SpeechReport(segments=[], speech_ratio=0.0, duration=duration)
        fused, p, s = self.frame_probabilities(mono)
        segments = self._segments(fused, self.rule.threshold, self.rule.min_speech_s, duration)
        report = report_from_segments(segments, duration)
        report.evidence = {
            "primary": self._reading(self.primary, p, duration),
            "secondary": self._reading(self.secondary, s, duration),
            "fused": {
                "max_probability": round(float(fused.max()), 4),
                "speech_seconds": round(sum(b - a for a, b in segments), 3),
                "rule": asdict(self.rule),
            },
        }
        return report
