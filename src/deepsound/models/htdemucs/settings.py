"""HTDemucs's settings (``[pipeline.separator]`` for ``htdemucs``). Light: no torch, no onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepsound.audio import RESAMPLE_QUALITIES
from deepsound.errors import ConfigError

WEIGHT_FILES = ("htdemucs",)


@dataclass
class HTDemucsSettings:
    """How the graph is run over a track (Demucs's ``apply_model`` options, its defaults but ``shifts``).

    ``shifts`` defaults to 0 rather than Demucs's 1: a shift is a random offset of up to half
    a second, and one shift only moves the result by that chance; with ``shifts`` above 0 the
    offsets come from ``seed``, so a run is repeatable.
    """

    overlap: float = field(
        default=0.25, metadata={"help": "Share of each 7.8 s segment overlapping the next."}
    )
    shifts: int = field(default=0, metadata={"help": "Random time shifts averaged (Demucs's --shifts)."})
    seed: int = 0
    threads: int = field(default=0, metadata={"help": "onnxruntime threads (0: as many as torch uses)."})
    resample_quality: str = field(
        default="VHQ",
        metadata={
            "help": "soxr quality that brings audio to the model's rate",
            "choices": RESAMPLE_QUALITIES,
        },
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.shifts < 0 or self.threads < 0:
            raise ConfigError("shifts and threads must be 0 or more")
        if self.resample_quality not in RESAMPLE_QUALITIES:
            raise ConfigError(
                f"unknown resample_quality {self.resample_quality!r}; choose one of: {', '.join(RESAMPLE_QUALITIES)}"
            )
