"""Speed of MMAudio's conditioning encoders at full size: ours vs the official MMAudio code.

Both sides get identical deterministic random weights (``fill_seeded``), so the
table also reports how far apart their outputs are. The official code is
imported from a checkout of hkchengrex/MMAudio given with ``--reference``
(it needs open_clip, timm, omegaconf and einops); without it only our side is
timed.

    python benchmarks/bench_mmaudio_conditioning.py --reference ../MMAudio --frames 2 --windows 2

GFLOP/s counts multiply-adds as two operations, from the architecture:
ViT-H/14 on 384 px frames is ~1.0 TFLOP per frame, a 16-frame Synchformer
window ~0.38 TFLOP.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import torch
from machine import describe

from deepsound.models.mmaudio.clip import ClipConditioner
from deepsound.models.mmaudio.synchformer import SynchformerEncoder
from deepsound.testing.equivalence import fill_seeded, relative_l2

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def vit_macs(tokens: int, width: int, layers: int, mlp: int) -> float:
    """Multiply-adds of a plain pre-norm ViT stack: projections, MLP and attention."""
    return layers * (4 * tokens * width * width + 2 * tokens * width * mlp + 2 * tokens * tokens * width)


def clip_flops_per_frame(clip: ClipConditioner) -> float:
    v = clip.model_config["vision_cfg"]
    grid = v["image_size"] // v["patch_size"]
    tokens = grid * grid + 1
    width = v["width"]
    macs = vit_macs(tokens, width, v["layers"], int(width * v.get("mlp_ratio", 4.0)))
    macs += grid * grid * 3 * v["patch_size"] ** 2 * width + width * clip.image_dim
    return 2 * macs


def synchformer_flops_per_window(model: SynchformerEncoder) -> float:
    c = model.config
    t, n, d = c.time_steps, c.patches, c.embed_dim
    tokens = 1 + t * n
    hidden = int(d * c.mlp_ratio)
    per_block = 8 * tokens * d * d + 2 * tokens * d * hidden  # two attentions' projections + MLP
    per_block += 2 * (t * n) * ((t + 1) + (n + 1)) * d + 2 * 2 * tokens * d  # grouped + CLS attention
    macs = c.depth * per_block + t * n * 3 * c.tubelet * c.patch_size**2 * d
    macs += t * ((n + 1) * 2 * d * d + 2 * d * d + 2 * d * hidden + 2 * (n + 1) * d)  # frame pooling
    return 2 * macs


def timed(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def row(name: str, seconds: float, units: int, flops: float, unit: str) -> list[str]:
    per = seconds / units
    return [name, f"{per:8.2f} s/{unit}", f"{flops / per / 1e9:8.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", help="path of an MMAudio checkout (official code)")
    parser.add_argument("--frames", type=int, default=2, help="CLIP frames per timed call")
    parser.add_argument("--windows", type=int, default=2, help="Synchformer windows per timed call")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-clip", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="also time our encoders in bfloat16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    official = None
    if args.reference:
        sys.path.insert(0, args.reference)
        from mmaudio.model.utils.features_utils import FeaturesUtils

        official = FeaturesUtils(enable_conditions=False).eval()

    rows: list[list[str]] = []
    notes: list[str] = []
    bench_synchformer(args, official, rows, notes)
    if not args.skip_clip:
        bench_clip(args, official, rows, notes)

    print(describe())
    print(
        f"\n{'encoder':28s} {'time':>16s} {'GFLOP/s':>9s}   ({args.threads} threads, best of {args.repeats})"
    )
    for r in rows:
        print(f"{r[0]:28s} {r[1]:>16s} {r[2]:>9s}")
    for n in notes:
        print(n)


def bench_synchformer(
    args: argparse.Namespace, official: object | None, rows: list[list[str]], notes: list[str]
) -> None:
    sync = fill_seeded(SynchformerEncoder(), seed=0)
    video = torch.rand(1, 16 + 8 * (args.windows - 1), 3, 224, 224) * 2 - 1
    flops = synchformer_flops_per_window(sync)
    sync.encode(video[:, :16])  # warm-up
    t_ours, ours = timed(lambda: sync.encode(video, batch_size=args.windows), args.repeats)
    rows.append(row("Synchformer ours fp32", t_ours, args.windows, flops, "window"))
    if official is not None:
        from mmaudio.ext.synchformer import Synchformer

        official.synchformer = fill_seeded(Synchformer().eval(), seed=0)
        official.encode_video_with_sync(video[:, :16])
        t_ref, ref = timed(
            lambda: official.encode_video_with_sync(video, batch_size=args.windows), args.repeats
        )
        rows.append(row("Synchformer official fp32", t_ref, args.windows, flops, "window"))
        notes.append(
            f"Synchformer: official/ours time {t_ref / t_ours:.2f}x, rel. L2 {relative_l2(ours, ref):.1e}"
        )
        official.synchformer = None
    if args.bf16:
        sync = sync.to(torch.bfloat16)
        sync.encode(video[:, :16])
        t_bf, out = timed(lambda: sync.encode(video, batch_size=args.windows), args.repeats)
        rows.append(row("Synchformer ours bf16", t_bf, args.windows, flops, "window"))
        notes.append(f"Synchformer bf16 vs fp32: rel. L2 {relative_l2(out.float(), ours):.1e}")


def bench_clip(
    args: argparse.Namespace, official: object | None, rows: list[list[str]], notes: list[str]
) -> None:
    clip = ClipConditioner.from_pretrained()
    fill_seeded(clip.model, seed=1)
    frames = torch.rand(1, args.frames, 3, 384, 384)
    flops = clip_flops_per_frame(clip)
    clip.encode_image(frames[:, :1])  # warm-up
    t_ours, ours = timed(lambda: clip.encode_image(frames), args.repeats)
    rows.append(row("CLIP image ours fp32", t_ours, args.frames, flops, "frame"))
    if official is not None:
        # the official wrapper around the very same open_clip module (weights shared, not copied)
        from mmaudio.model.utils.features_utils import patch_clip
        from torchvision.transforms import Normalize

        official.clip_model = patch_clip(clip.model)
        official.clip_preprocess = Normalize(mean=CLIP_MEAN, std=CLIP_STD)
        t_ref, ref = timed(lambda: official.encode_video_with_clip(frames), args.repeats)
        rows.append(row("CLIP image official fp32", t_ref, args.frames, flops, "frame"))
        notes.append(
            f"CLIP image: official/ours time {t_ref / t_ours:.2f}x, rel. L2 {relative_l2(ours, ref):.1e}"
        )
    if args.bf16:
        clip = clip.to(torch.bfloat16)
        clip.encode_image(frames[:, :1])
        t_bf, out = timed(lambda: clip.encode_image(frames), args.repeats)
        rows.append(row("CLIP image ours bf16", t_bf, args.frames, flops, "frame"))
        notes.append(f"CLIP bf16 vs fp32: rel. L2 {relative_l2(out.float(), ours):.1e}")


if __name__ == "__main__":
    main()
