"""FoleyCrafter's own settings: the official inference's numbers as defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FoleyCrafterSettings:
    """What a FoleyCrafter generator needs to know, and nothing of the pipeline around it.

    Defaults are the official ``inference.py``: 25 PNDM steps (the request's ``num_steps``),
    classifier-free guidance 7.5 (the pipeline's default), semantic (IP-Adapter) scale 1.0,
    temporal (ControlNet) scale 0.2, 150 frames per clip, a 256×1024 spectrogram canvas that the
    official code treats as 10 s, 16 kHz output.
    """

    semantic_scale: float = 1.0
    temporal_scale: float = 0.2
    guidance_scale: float = 7.5
    frames: int = 150
    # the canvas: 1024 columns mapped onto `canvas_seconds` of video, 256 frequency rows
    canvas_seconds: float = 10.0
    height: int = 256
    width: int = 1024
    # videos longer than window + window_slack seconds are made in equal windows of at most `window`
    # seconds; up to the slack the official single pass (condition squeezed, audio cut) is kept
    window: float = 10.0
    window_slack: float = 0.5
    # the official detector normalises with each clip's own statistics (it is left in training mode)
    detector_batch_statistics: bool = True
    # "float32" is what the official runs; "float16" / "bfloat16" halve memory on a GPU
    dtype: str = "float32"
    image_batch: int = 32  # frames per image-encoder pass
