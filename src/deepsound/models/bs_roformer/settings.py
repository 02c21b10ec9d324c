"""BS-RoFormer's settings (``[pipeline.separator]`` for ``bs_roformer``). Light: no torch."""

from __future__ import annotations

from dataclasses import dataclass, field

WEIGHT_FILES = ("bs_roformer_viperx", "bs_roformer_viperx_config")


@dataclass
class BsRoformerSettings:
    only_speech: bool = field(
        default=False, metadata={"help": "Remove voice only around detected speech.", "flag": "--only-speech"}
    )
    crossfade_s: float = 0.1  # cross-fade at the edges of a speech-gated stretch
    batch_size: int | None = None  # chunks per forward pass (None: the checkpoint's own)
