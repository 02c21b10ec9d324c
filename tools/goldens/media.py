"""Goldens of MMAudio's frame recipe: ``tests/data/media/*.golden.npz``, from the official ``load_video``.

The official ``mmaudio.eval_utils.load_video(path, duration, load_all_frames=False)`` runs on the
committed synthetic clips (``tests/data/media``, made once with ``tests/media_factory.py``) and, when
``--clips`` names the folder holding them, on three real clips. For every output frame of both
streams the SHA-256 of its float32 bytes is stored, with the shapes, the effective duration and a
strided subsample quantized to uint8 (every 8th pixel for synthetic clips, every 16th for real ones)
so that a mismatch can be located (see ``tests/test_media.py``).

Usage: ``python tools/make_goldens.py media --official /path/to/MMAudio [--clips ../shared/media]``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from goldens._common import check_checkout, imported_from
from goldens.mmaudio import COMMIT

DESCRIPTION = "video frame sampling for CLIP/Synchformer (MMAudio's load_video, hkchengrex/MMAudio)"
ROOT = Path(__file__).resolve().parents[2]
# clip name -> requested duration in seconds
SYNTHETIC = {
    "cfr25_320x240.mp4": 1.5,
    "ntsc2997_176x144.mp4": 8.0,  # longer than the clip: the duration gets shortened
    "film23976_200x112.mp4": 1.0,
    "vfr30_160x120.mkv": 1.2,
    "portrait30_120x160.mp4": 1.0,
}
REAL = {"1QBsc_IXg8U_000750.mp4": 8.0, "00000003.gt.mp4": 8.0, "silent_street_600x316.mp4": 10.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--official", type=Path, required=True, help="checkout of hkchengrex/MMAudio")
    parser.add_argument(
        "--clips", type=Path, default=ROOT.parent / "shared" / "media", help="folder of the real clips"
    )


def golden(video, requested: float, stride: int) -> dict[str, np.ndarray]:
    clip, sync = video.clip_frames, video.sync_frames

    def digest(frames):
        return np.array([hashlib.sha256(f.contiguous().numpy().tobytes()).hexdigest() for f in frames])

    return {
        "requested": np.array(requested),
        "duration": np.array(video.duration_sec),
        "stride": np.array(stride),
        "clip_shape": np.array(clip.shape),
        "sync_shape": np.array(sync.shape),
        "clip_sha256": digest(clip),
        "sync_sha256": digest(sync),
        "clip_u8": torch.round(clip * 255).to(torch.uint8)[:, :, ::stride, ::stride].numpy(),
        "sync_u8": torch.round((sync * 0.5 + 0.5) * 255).to(torch.uint8)[:, :, ::stride, ::stride].numpy(),
    }


def main(args: argparse.Namespace) -> list[Path]:
    official = check_checkout(args.official, "mmaudio/eval_utils.py", COMMIT, "MMAudio")
    jobs = [(ROOT / "tests" / "data" / "media" / name, name, d, 8) for name, d in SYNTHETIC.items()]
    if args.clips.is_dir():
        jobs += [(args.clips / name, name, d, 16) for name, d in REAL.items()]
    else:
        print(f"[media] {args.clips}: no real clips; their goldens are not regenerated", file=sys.stderr)
    written = []
    with imported_from(official, "mmaudio"):
        from mmaudio.eval_utils import load_video

        for path, name, requested, stride in jobs:
            rel = Path("media") / f"{name}.golden.npz"
            (args.out / rel).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(
                args.out / rel, **golden(load_video(path, requested, False), requested, stride)
            )
            written.append(rel)
    return written
