"""TEN VAD: a frame-level speech detector that keeps hearing voices under loud beds.

TEN VAD (Agora's TEN framework) is a small recurrent network on 16 ms hops of
16 kHz audio, compiled with its weights into the library the ``ten-vad`` wheel
ships (it needs Debian's ``libc++1``): nothing to download, so it works
offline like Silero. On the project's development set of real speech mixed into
real soundtracks it hears more speech than Silero once the bed is as loud as
the voice, and fires more often on engines, horns and animals; the fused gate
(:mod:`deepsound.steps.speech_gate`) uses both.

The wheel's wrapper takes int16 hops one call at a time; a fresh handle per
track keeps tracks independent (its recurrent state would otherwise carry from
one clip into the next). Creating one costs microseconds.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from deepsound.audio import Audio
from deepsound.errors import ConfigError
from deepsound.interfaces import SpeechReport
from deepsound.models.ten_vad.settings import TenVadSettings
from deepsound.speech_frames import check_segment_rule, report_from_segments, segments_from_probabilities

VAD_SAMPLE_RATE = 16000
HOP = 256  # samples: 16 ms, the hop the published model was trained with


def _ten_vad_class() -> Any:
    try:
        from ten_vad import TenVad
    except OSError as exc:  # the wheel's library needs libc++ (Debian: libc++1)
        # a user's set-up problem: one line from the CLI, not a traceback
        raise ConfigError(
            f"TEN VAD's library could not load ({exc}); install libc++1 (apt-get install libc++1)"
        ) from exc
    return TenVad


class TenSpeechDetector:
    """Speech segments of an :class:`Audio` from TEN VAD's frame probabilities.

    The segmenting rule is the one Silero's segmenter applies (hysteresis,
    minimum speech and silence, padding), so that the two detectors differ only
    in what they hear.
    """

    name = "ten-vad"
    sample_rate = VAD_SAMPLE_RATE
    hop_s = HOP / VAD_SAMPLE_RATE

    def __init__(
        self,
        threshold: float = 0.5,
        min_speech_s: float = 0.25,
        min_silence_s: float = 0.1,
        pad_s: float = 0.03,
    ) -> None:
        check_segment_rule(threshold, min_speech_s, min_silence_s, pad_s)
        self.threshold = float(threshold)
        self.min_speech_s = float(min_speech_s)
        self.min_silence_s = float(min_silence_s)
        self.pad_s = float(pad_s)
        self._cls: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, s: TenVadSettings) -> TenSpeechDetector:
        """The ``[pipeline.speech]`` settings."""
        return cls(
            threshold=s.threshold, min_speech_s=s.min_speech_s, min_silence_s=s.min_silence_s, pad_s=s.pad_s
        )

    def frame_probabilities(self, mono: np.ndarray) -> np.ndarray:
        """Speech probability of each 16 ms hop of a 16 kHz mono float signal (last hop zero-padded)."""
        if mono.size == 0:
            return np.zeros(0, np.float32)
        pcm = np.clip(np.round(np.asarray(mono, np.float64) * 32767.0), -32768, 32767).astype(np.int16)
        pcm = np.pad(pcm, (0, (-pcm.size) % HOP))
        with self._lock:
            if self._cls is None:
                self._cls = _ten_vad_class()
            vad = self._cls(HOP, self.threshold)
            probs = [vad.process(np.ascontiguousarray(pcm[i : i + HOP]))[0] for i in range(0, pcm.size, HOP)]
            del vad
        return np.asarray(probs, np.float32)

    def detect(self, audio: Audio) -> SpeechReport:
        """Speech segments in seconds of ``audio`` (any rate, any channel count) and their share of it."""
        duration = audio.duration
        mono = audio.to_mono().resample(VAD_SAMPLE_RATE).waveform[0]
        probs = self.frame_probabilities(mono)
        segments = segments_from_probabilities(
            probs, self.hop_s, threshold=self.threshold, min_speech_s=self.min_speech_s,
            min_silence_s=self.min_silence_s, pad_s=self.pad_s, duration=duration,
        )  # fmt: skip
        return report_from_segments(segments, duration)
