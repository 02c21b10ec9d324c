"""BS-RoFormer's settings (``[pipeline.separator]`` for ``bs_roformer``). Light: no torch.

The model runs at 44.1 kHz stereo, so step 3 resamples whatever it is given. Two settings say
how, because the reference DeepSound-V1 pipeline and this project choose differently:

* ``resample_quality``: soxr "VHQ" (ours, as everywhere in the project) or "HQ" (librosa's
  default, with which the reference loads step 1 at 44.1 kHz).
* ``output_format``: ``input`` gives step 3's result back at step 1's rate and channel count (one
  output format for a run, our default); ``model`` keeps it at the model's rate and channels, as
  the reference keeps its step-3 file (44.1 kHz stereo; then step 4 and an ``s3`` run's final
  audio see that file, as they do in the reference).

``--preset paper`` sets both to the reference's choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepsound.audio import RESAMPLE_QUALITIES
from deepsound.errors import ConfigError

WEIGHT_FILES = ("bs_roformer_viperx", "bs_roformer_viperx_config")
OUTPUT_FORMATS = ("input", "model")


@dataclass
class BsRoformerSettings:
    only_speech: bool = field(
        default=False, metadata={"help": "Remove voice only around detected speech.", "flag": "--only-speech"}
    )
    crossfade_s: float = 0.1  # cross-fade at the edges of a speech-gated stretch
    batch_size: int | None = None  # chunks per forward pass (None: the checkpoint's own)
    resample_quality: str = field(
        default="VHQ",
        metadata={
            "help": "soxr quality that brings audio to the model's rate",
            "choices": RESAMPLE_QUALITIES,
        },
    )
    output_format: str = field(
        default="input",
        metadata={
            "help": "step 3's result at the input's rate and channels, or the model's (44.1 kHz stereo)",
            "choices": OUTPUT_FORMATS,
        },
    )

    def __post_init__(self) -> None:
        for name, allowed in (("resample_quality", RESAMPLE_QUALITIES), ("output_format", OUTPUT_FORMATS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")
