"""Where is someone speaking? Silero VAD, a small CPU model, in front of the expensive judges.

Most generated tracks hold no voice at all; a voice activity detector answers
that in tens of milliseconds per clip, so the 7B MLLM only needs to look at the
few where speech was heard. The weights ship inside the ``silero-vad`` wheel,
so this works offline and needs nothing from the weight registry.

The model runs at 16 kHz on a mono mix; the audio is resampled with the same
resampler as everywhere else, and the segments come back in seconds of the
original track.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from deepsound.audio import Audio
from deepsound.interfaces import SpeechReport
from deepsound.models.silero.settings import SileroSettings
from deepsound.speech_frames import check_segment_rule

VAD_SAMPLE_RATE = 16000


def _load_silero() -> tuple[Any, Any]:
    """The TorchScript model and the segmenting function from the ``silero-vad`` wheel.

    Importing ``silero_vad`` sets torch's global thread count to 1 as a side
    effect, which would slow every other model in the process; the previous
    count is put back.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation notice
            warnings.simplefilter("ignore", DeprecationWarning)  # importlib.resources.path in the loader
            from silero_vad import get_speech_timestamps, load_silero_vad

            model = load_silero_vad(onnx=False)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return model, get_speech_timestamps


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the VAD on one thread, then restore the count.

    The model steps through 32 ms windows one at a time; splitting such tiny
    operations across threads costs more than it gains (several times slower
    on a busy 2-core machine). The count is process-wide, so other torch work
    running at that moment also gets one thread for the fraction of a second
    this takes.
    """
    import torch

    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class SileroSpeechDetector:
    """Speech segments of an :class:`Audio`, from Silero VAD.

    ``threshold`` is the speech probability above which a 32 ms window counts
    as speech; runs shorter than ``min_speech_s`` are dropped and gaps shorter
    than ``min_silence_s`` are bridged; each segment is widened by ``pad_s`` on
    both sides (clipped to the track). The model loads on first use and is
    reused; one instance may be shared between threads (calls are serialised,
    the model keeps state between windows).
    """

    name = "silero-vad"
    sample_rate = VAD_SAMPLE_RATE
    hop_s = 512 / VAD_SAMPLE_RATE  # the model's window at 16 kHz

    def __init__(
        self,
        threshold: float = SileroSettings.threshold,
        min_speech_s: float = SileroSettings.min_speech_s,
        min_silence_s: float = SileroSettings.min_silence_s,
        pad_s: float = SileroSettings.pad_s,
    ) -> None:
        check_segment_rule(threshold, min_speech_s, min_silence_s, pad_s)
        self.threshold = float(threshold)
        self.min_speech_s = float(min_speech_s)
        self.min_silence_s = float(min_silence_s)
        self.pad_s = float(pad_s)
        self._model: Any = None
        self._segmenter: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, s: SileroSettings) -> SileroSpeechDetector:
        """The ``[pipeline.speech]`` settings."""
        return cls(
            threshold=s.threshold, min_speech_s=s.min_speech_s, min_silence_s=s.min_silence_s, pad_s=s.pad_s
        )

    def _ensure_model(self) -> None:
        if self._model is None:
            self._model, self._segmenter = _load_silero()

    def frame_probabilities(self, mono: np.ndarray) -> np.ndarray:
        """Speech probability of each 32 ms window of a 16 kHz mono float signal.

        The same numbers the wheel's segmenter computes window by window (state
        reset first), in one batched call; the fused gate combines them with
        TEN VAD's.
        """
        if mono.size == 0:
            return np.zeros(0, np.float32)
        import torch

        with self._lock:
            self._ensure_model()
            with torch.inference_mode(), _one_thread():
                self._model.reset_states()
                probs = self._model.audio_forward(
                    torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32)), VAD_SAMPLE_RATE
                )
        return probs[0].numpy().astype(np.float32)

    def detect(self, audio: Audio) -> SpeechReport:
        """Speech segments in seconds of ``audio`` (any rate, any channel count) and their share of it."""
        duration = audio.duration
        mono = audio.to_mono().resample(VAD_SAMPLE_RATE).waveform[0]
        if mono.size == 0:
            return SpeechReport(segments=[], speech_ratio=0.0, duration=duration)
        import torch

        with self._lock:
            self._ensure_model()
            with torch.inference_mode(), _one_thread():
                stamps = self._segmenter(
                    torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32)),
                    self._model,
                    threshold=self.threshold,
                    sampling_rate=VAD_SAMPLE_RATE,
                    min_speech_duration_ms=int(round(self.min_speech_s * 1000)),
                    min_silence_duration_ms=int(round(self.min_silence_s * 1000)),
                    speech_pad_ms=int(round(self.pad_s * 1000)),
                )
        segments = []
        for stamp in stamps:
            start = min(max(stamp["start"] / VAD_SAMPLE_RATE, 0.0), duration)
            end = min(max(stamp["end"] / VAD_SAMPLE_RATE, 0.0), duration)
            if end > start:
                segments.append((round(start, 4), round(end, 4)))
        spoken = sum(end - start for start, end in segments)
        ratio = min(spoken / duration, 1.0) if duration > 0 else 0.0
        return SpeechReport(segments=segments, speech_ratio=float(ratio), duration=duration)


def speech_report_for_file(path: Path | str, detector: SileroSpeechDetector) -> SpeechReport:
    """Speech in the audio track of a media file (raises :class:`~deepsound.errors.MediaError` on bad input)."""
    from deepsound.media import read_audio

    return detector.detect(read_audio(Path(path)))
