"""MMAudio's conditioning encoders (CLIP via open_clip, Synchformer): ``tests/data/mmaudio_cond``.

Recipe (see ``tests/test_mmaudio_conditioning.py``): the official ``FeaturesUtils`` encoding
methods run on official modules filled with ``fill_seeded`` (Synchformer seed 0, CLIP seed 1);
frames are uniform random low-resolution pictures (``torch.rand`` from a seeded generator, stored
in float16) repeated 8x along height and width.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from unittest import mock

import torch

from goldens._common import save

SYNC_SEED, CLIP_SEED, UPSAMPLE = 0, 1, 8
TINY_MOTIONFORMER = {"EMBED_DIM": 64, "DEPTH": 2, "NUM_HEADS": 4}
CLIP_ARCH = "ViT-H-14-378-quickgelu"
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
TINY_CLIP = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 384, "layers": 2, "width": 64, "head_width": 16, "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
TEXTS = [
    "a dog barking in the rain",
    "",
    "Ukulele music, with a crowd cheering LOUDLY!!",
    " ".join(["waves crash on rocks while seagulls call"] * 12),  # longer than 77 tokens
]


def _frames(seed: int, shape: tuple[int, ...], signed: bool) -> torch.Tensor:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    return (x * 2 - 1 if signed else x).half()


def _grow(lowres: torch.Tensor) -> torch.Tensor:
    return lowres.float().repeat_interleave(UPSAMPLE, -1).repeat_interleave(UPSAMPLE, -2)


def _synchformer(tiny: bool):
    """The official Synchformer; tiny: its MotionFormer yaml patched to the tiny width/depth/heads."""
    from mmaudio.ext.synchformer import motionformer
    from mmaudio.ext.synchformer.synchformer import Synchformer

    if not tiny:
        return Synchformer()
    load = motionformer.OmegaConf.load

    def patched(path):
        cfg = load(path)
        for key, value in TINY_MOTIONFORMER.items():
            cfg.VIT[key] = value
        return cfg

    with mock.patch.object(motionformer.OmegaConf, "load", patched):
        return Synchformer()


def _features_utils(**parts):
    from mmaudio.model.utils.features_utils import FeaturesUtils

    utils = FeaturesUtils(enable_conditions=False)
    for name, value in parts.items():
        setattr(utils, name, value)
    return utils


def _sync_golden(tiny: bool) -> dict:
    from deepsound.testing.equivalence import fill_seeded

    shape, seed, batch = ((2, 32, 3, 28, 28), 11, 4) if tiny else ((1, 24, 3, 28, 28), 12, 1)
    lowres = _frames(seed, shape, signed=True)
    model = fill_seeded(_synchformer(tiny).eval(), SYNC_SEED)
    features = _features_utils(synchformer=model).encode_video_with_sync(_grow(lowres), batch_size=batch)
    return {
        "frames_lowres": lowres,
        "upsample": UPSAMPLE,
        "seed": SYNC_SEED,
        "batch_size": batch,
        "config": dict(TINY_MOTIONFORMER) if tiny else None,
        "features": features,
    }


def _clip_golden(tiny: bool) -> dict:
    import open_clip
    from mmaudio.model.utils.features_utils import patch_clip
    from torchvision.transforms import Normalize

    from deepsound.testing.equivalence import fill_seeded

    if tiny:
        # the official creation call, from a local folder instead of the hub
        model = fill_seeded(open_clip.model.CLIP(**TINY_CLIP), CLIP_SEED)
        with tempfile.TemporaryDirectory() as folder:
            torch.save(model.state_dict(), Path(folder) / "open_clip_pytorch_model.bin")
            (Path(folder) / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP}))
            model = open_clip.create_model_from_pretrained(f"local-dir:{folder}", return_transform=False)
        shape, seed, texts = (2, 3, 3, 48, 48), 21, TEXTS
    else:
        model = fill_seeded(open_clip.create_model(CLIP_ARCH), CLIP_SEED)
        shape, seed, texts = (1, 1, 3, 48, 48), 22, TEXTS[:2]
    lowres = _frames(seed, shape, signed=False)
    utils = _features_utils(
        clip_model=patch_clip(model.eval()),
        clip_preprocess=Normalize(mean=CLIP_MEAN, std=CLIP_STD),
        tokenizer=open_clip.get_tokenizer(CLIP_ARCH),
    )
    return {
        "frames_lowres": lowres,
        "upsample": UPSAMPLE,
        "seed": CLIP_SEED,
        "config": TINY_CLIP if tiny else None,
        "texts": list(texts),
        "tokens": utils.tokenizer(texts),
        "image_features": utils.encode_video_with_clip(_grow(lowres), batch_size=4),
        "text_features": utils.encode_text(texts),
    }


def manifests(out: Path) -> list[Path]:
    import open_clip

    from deepsound.testing.equivalence import parameter_manifest

    # MotionFormer calls .item() while it is built, so it cannot be built on the meta device (ViT-B size)
    sync = parameter_manifest(_synchformer(tiny=False).state_dict())
    with torch.device("meta"):
        clip = parameter_manifest(open_clip.create_model(CLIP_ARCH, device="meta").state_dict())
    written = []
    for rel, manifest in (
        ("mmaudio_cond/synchformer_manifest.json", sync),
        ("mmaudio_cond/clip_vit_h14_378_manifest.json", clip),
    ):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        written.append(Path(rel))
    return written


def goldens(out: Path, *, full: bool) -> list[Path]:
    written = manifests(out)
    written.append(save(_sync_golden(tiny=True), out, "mmaudio_cond/sync_tiny.pt"))
    written.append(save(_clip_golden(tiny=True), out, "mmaudio_cond/clip_tiny.pt"))
    if full:
        written.append(save(_sync_golden(tiny=False), out, "mmaudio_cond/sync_full.pt"))
        written.append(save(_clip_golden(tiny=False), out, "mmaudio_cond/clip_full.pt"))
    return written
