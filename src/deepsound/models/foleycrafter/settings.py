"""FoleyCrafter's own settings: the official inference's numbers as defaults.

Light on purpose (no torch): a component registry can read the fields (their ``help``) to offer
them as options before any model loads. Where the model runs and in which precision is not here:
that is the placement's (device, dtype, weights), which every model receives beside its settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SAMPLE_RATE = 16000
DURATION_RANGE = (0.0, None)  # any length: up to ~10 s in one official pass, longer ones in windows
DISPLAY_NAME = "FoleyCrafter"


@dataclass
class FoleyCrafterSettings:
    """What a FoleyCrafter generator needs to know, and nothing of the pipeline around it.

    Defaults are the official ``inference.py``: 25 PNDM steps (the request's ``num_steps``),
    classifier-free guidance 7.5 (the pipeline's default), semantic (IP-Adapter) scale 1.0,
    temporal (ControlNet) scale 0.2, 150 frames per clip, a 256×1024 spectrogram canvas that the
    official code treats as 10 s, 16 kHz output.
    """

    semantic_scale: float = field(default=1.0, metadata={"help": "IP-Adapter (visual content) scale"})
    temporal_scale: float = field(default=0.2, metadata={"help": "ControlNet (onset timing) scale"})
    guidance_scale: float = field(default=7.5, metadata={"help": "classifier-free guidance"})
    frames: int = field(default=150, metadata={"help": "frames read per clip (spread evenly)"})
    canvas_seconds: float = field(default=10.0, metadata={"help": "seconds the onset map's columns span"})
    height: int = field(default=256, metadata={"help": "spectrogram rows (the vocoder's mel bins)"})
    width: int = field(default=1024, metadata={"help": "spectrogram columns"})
    window: float = field(default=10.0, metadata={"help": "longest stretch made in one pass (s)"})
    window_slack: float = field(
        default=0.5, metadata={"help": "a clip this much longer than a window still gets one official pass"}
    )
    detector_batch_statistics: bool = field(
        default=True,
        metadata={"help": "the detector normalises with each clip's statistics, as the official runs it"},
    )
    image_batch: int = field(default=32, metadata={"help": "frames per image-encoder pass"})


# every published file FoleyCrafter loads (names of deepsound.weights.registry)
WEIGHT_FILES = (
    "auffusion_full_no_adapter",
    "foleycrafter_temporal_adapter",
    "foleycrafter_timestamp_detector",
    "foleycrafter_semantic_adapter",
    "foleycrafter_vocoder",
    "foleycrafter_vocoder_config",
    "ip_adapter_image_encoder",
    "ip_adapter_image_encoder_config",
)
