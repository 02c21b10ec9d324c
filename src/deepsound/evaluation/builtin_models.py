"""The built-in feature models behind the extractor names, wired to :mod:`deepsound.models.eval`.

Each factory builds its network on first call and wraps it in the
:class:`~deepsound.evaluation.extractors.Extractor` protocol: the av-benchmark
preprocessing lives with the models (:mod:`deepsound.evaluation.audio`,
:mod:`deepsound.evaluation.video`), this module only says which cache file
each output goes to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from deepsound.evaluation.extractors import Settings, Source

SILERO_VERSION = "silero-vad, threshold 0.5, min speech 0.25 s"


class SileroExtractor:
    """Silero VAD on the evaluated stretch of each file: ``tensor([speech_ratio, segments])``."""

    name = "silero"
    modality = "audio"
    files = ("silero_speech.pth",)

    def __init__(self, settings: Settings, detector: Any = None) -> None:
        self.settings = settings
        if detector is None:
            from deepsound.models.silero.detector import SileroSpeechDetector

            detector = SileroSpeechDetector()
        self.detector = detector

    def fingerprint(self) -> dict[str, Any]:
        return {"model": SILERO_VERSION, "duration": self.settings.duration}

    def extract(self, source: Source) -> dict[str, Any]:
        from deepsound.audio import Audio

        wav, rate = source.raw
        wav = wav[:, : int(rate * self.settings.duration)]
        report = self.detector.detect(Audio(wav.numpy(), rate))
        return {self.files[0]: torch.tensor([report.speech_ratio, float(len(report.segments))])}


FACTORIES: dict[tuple[str, str], Callable[[Settings], Any]] = {
    ("silero", "audio"): SileroExtractor,
}
HEADS: dict[str, Callable[[Settings], Any]] = {}
