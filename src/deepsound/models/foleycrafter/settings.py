"""FoleyCrafter's own settings: the official inference's numbers as defaults.

Light on purpose (no torch): the component registry can read the fields (their ``help``) to offer
them as options before any model loads. Where the model runs and in which precision is not here:
that is the placement's (device, dtype, weights), which every model receives beside its settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepsound.weights.registry import UNKNOWN, WeightFile

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


# Every published file FoleyCrafter loads, registered with the generator: its adapters, detector and vocoder, Auffusion (a diffusers
# folder: UNet, VAE, CLIP text encoder, tokenizer, scheduler) and IP-Adapter's image encoder. The
# publishers state no checksums and only rounded sizes (temporal adapter ≈ 4.3 GB, detector ≈ 377 MB);
# the hub client checks each download against its LFS hash. Revisions are the branches the official
# inference downloads (only short commit ids of them are public).
_FOLEYCRAFTER_LICENCE = "Apache-2.0 (FoleyCrafter); Auffusion and IP-Adapter under their own terms"


def _hub_file(name: str, repo: str, path: str, notes: str) -> WeightFile:
    return WeightFile(
        name=name,
        filename=path,
        subdir="ext_weights",
        hub_repo=repo,
        hub_filename=path,
        licence=_FOLEYCRAFTER_LICENCE,
        notes=notes,
        checksum=UNKNOWN,  # recorded on first use, checked from then on
        checksum_origin="no checksum published; the first copy's SHA-256 is recorded (the hub client "
        "also checks the LFS hash while downloading)",
    )


WEIGHT_FILES: tuple[WeightFile, ...] = (
    _hub_file(
        "foleycrafter_temporal_adapter",
        "ymzhang319/FoleyCrafter",
        "temporal_adapter.ckpt",
        "FoleyCrafter temporal adapter (ControlNet on onsets), ≈ 4.3 GB",
    ),
    _hub_file(
        "foleycrafter_timestamp_detector",
        "ymzhang319/FoleyCrafter",
        "timestamp_detector.pth.tar",
        "FoleyCrafter timestamp detector (R(2+1)D onset network), ≈ 377 MB",
    ),
    _hub_file(
        "foleycrafter_semantic_adapter",
        "ymzhang319/FoleyCrafter",
        "semantic/semantic_adapter.bin",
        "FoleyCrafter semantic adapter (IP-Adapter)",
    ),
    _hub_file(
        "foleycrafter_vocoder", "ymzhang319/FoleyCrafter", "vocoder/vocoder.pt", "HiFi-GAN vocoder, 16 kHz"
    ),
    _hub_file(
        "foleycrafter_vocoder_config", "ymzhang319/FoleyCrafter", "vocoder/config.json", "vocoder config"
    ),
    _hub_file(
        "ip_adapter_image_encoder",
        "h94/IP-Adapter",
        "models/image_encoder/model.safetensors",
        "IP-Adapter image encoder (OpenCLIP ViT-H/14 as CLIPVisionModelWithProjection), ≈ 2.5 GB",
    ),
    _hub_file(
        "ip_adapter_image_encoder_config", "h94/IP-Adapter", "models/image_encoder/config.json", "its config"
    ),
    WeightFile(
        name="auffusion_full_no_adapter",
        filename="model_index.json",
        subdir="ext_weights",
        hub_repo="auffusion/auffusion-full-no-adapter",
        hub_filename="model_index.json",
        licence=_FOLEYCRAFTER_LICENCE,
        notes="Auffusion text-to-audio base of FoleyCrafter; a folder checkpoint (unet, vae, text_encoder, "
        "tokenizer, scheduler)",
        folder=True,
        checksum=UNKNOWN,
        checksum_origin="no checksum published; the first copy's files are recorded",
    ),
)
