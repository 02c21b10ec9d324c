"""TEN VAD's settings (``[pipeline.speech]`` for ``ten``). Light: no library loads here.

The same four numbers as Silero's, read the same way (the segmenting rule is shared), so
the two detectors differ only in what they hear.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TenVadSettings:
    threshold: float = 0.5
    min_speech_s: float = 0.25
    min_silence_s: float = 0.1
    pad_s: float = 0.03
