"""Silero VAD's settings (``[pipeline.speech]`` for ``silero``). Light: no torch.

The cascade judge, the separator's speech gate, the dataset builder and the evaluation's
voice-over rate all read speech through the one configured detector, so these numbers
are also part of the evaluation cache's fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SileroSettings:
    threshold: float = 0.5
    min_speech_s: float = 0.25
    min_silence_s: float = 0.1
    pad_s: float = 0.03
