"""Wall time and peak memory of BS-RoFormer vocal separation: ours vs the reference demix.

Both sides run the full viperx configuration (dim 512, depth 12, 62 bands,
8 s chunks, num_overlap 2, batch 4) with the same seeded random weights
(:func:`deepsound.testing.equivalence.fill_seeded`, seed 0) on the same few seconds of
stereo 44.1 kHz audio, each in a fresh subprocess so that its peak resident
memory can be read on its own. The reference side is Music-Source-Separation-
Training's own ``BSRoformer`` and ``demix`` (``--reference-root``, plus any
extra import paths its dependencies need in ``--reference-path``); it is not
part of this project and is only imported here.

Example::

    python benchmarks/bench_separation.py --seconds 10 \\
        --reference-root ../ref/GiantAILab+DeepSound-V1/third_party/MusicSourceSeparationTraining \\
        --reference-path ../refsite/separation

Wall time covers the separation itself (model building and the random
fill are left out on both sides). The table gives seconds, peak RSS, chunks run, the speed ratio, and the
relative L2 difference between the two vocal estimates.

Measured on a 2-core AMD EPYC (AVX-512) virtual machine, 10 s, fp32, torch 2.14:
reference 389 s / 5306 MiB (5 chunks), ours 173 s / 2237 MiB (4 chunks), 2.26x,
relative L2 4.2e-7. Re-run after the rotary change (one complex product for
the query/key pairs) on the same kind of machine, 1 torch thread, with other
work running: reference 817 s / 5546 MiB, ours 274 s / 2340 MiB, 2.99x, memory
0.42, relative L2 4.2e-7. With ``DEEPSOUND_ONEDNN=0`` (plain ``F.linear``) ours took
279 s: skipping the chunk that only covers padding and the fused projections
give about 1.4x, the oneDNN matrix products the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe

VIPERX_YAML = "configs/viperx/model_bs_roformer_ep_317_sdr_12.9755.yaml"


def test_signal(seconds: float, sample_rate: int = 44100) -> np.ndarray:
    """Deterministic stereo 'music': seeded noise plus a few tones, slightly different per channel."""
    rng = np.random.default_rng(0)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    tones = sum(a * np.sin(2 * np.pi * f * t) for f, a in ((220.0, 0.2), (1375.0, 0.1), (5000.0, 0.05)))
    mix = 0.1 * rng.standard_normal((2, n)) + tones
    return mix.astype(np.float32)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def run_ours(args: argparse.Namespace, mix: np.ndarray) -> tuple[np.ndarray, int, float]:
    import torch

    from deepsound.models.bs_roformer.config import BsRoformerConfig
    from deepsound.models.bs_roformer.demix import demix
    from deepsound.models.bs_roformer.network import build_model
    from deepsound.testing.equivalence import fill_seeded

    config = BsRoformerConfig.viperx()
    if args.chunk_size:
        config = config.replace(chunk_size=args.chunk_size)
    model = fill_seeded(build_model(config), 0).to(args.device)
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    model = model.to_compute_dtype(dtype)
    chunks = []
    start = time.perf_counter()
    with torch.inference_mode():
        vocals = demix(
            model,
            torch.from_numpy(mix),
            chunk_size=config.chunk_size,
            num_overlap=config.num_overlap,
            window_batch_size=config.batch_size,
            run_batch_size=args.batch_size,
            device=args.device,
            progress=lambda done, total: chunks.append(total),
        )
    return vocals[0].numpy(), chunks[-1] if chunks else 0, time.perf_counter() - start


def run_reference(args: argparse.Namespace, mix: np.ndarray) -> tuple[np.ndarray, int, float]:
    for extra in reversed([args.reference_root, *args.reference_path]):
        sys.path.insert(0, str(Path(extra).resolve()))
    import torch

    from deepsound.testing.equivalence import fill_seeded

    try:  # newer layout: utils/ package
        from utils.model_utils import demix  # type: ignore[import-not-found]
        from utils.settings import load_config  # type: ignore[import-not-found]
    except ImportError:  # the layout bundled with DeepSound-V1
        from utils import demix, load_config  # type: ignore[import-not-found,no-redef]
    from models.bs_roformer import BSRoformer  # type: ignore[import-not-found]

    yaml_path = Path(args.reference_config or Path(args.reference_root) / VIPERX_YAML)
    config = load_config("bs_roformer", str(yaml_path))
    if args.chunk_size:
        config.audio.chunk_size = args.chunk_size
    model = fill_seeded(BSRoformer(**dict(config.model)), 0).eval().to(args.device)
    calls = []
    original = model.forward

    def counted(x):  # count chunks the reference actually runs
        calls.append(x.shape[0])
        return original(x)

    model.forward = counted  # type: ignore[method-assign]
    start = time.perf_counter()
    with torch.inference_mode():
        out = demix(config, model, mix, torch.device(args.device), model_type="bs_roformer")
    return np.asarray(out["vocals"], dtype=np.float32), sum(calls), time.perf_counter() - start


def child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    mix = test_signal(args.seconds)
    vocals, chunks, wall = (run_ours if args.side == "ours" else run_reference)(args, mix)
    np.save(args.out, vocals)
    print(json.dumps({"wall_s": wall, "peak_rss_mib": peak_rss_mib(), "chunks": chunks}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: library default)")
    parser.add_argument("--batch-size", type=int, default=1, help="chunks per forward on our side")
    parser.add_argument("--reference-root", help="checkout of Music-Source-Separation-Training")
    parser.add_argument("--reference-path", action="append", default=[], help="extra import path (deps)")
    parser.add_argument("--reference-config", help="viperx YAML (default: inside the reference root)")
    parser.add_argument("--chunk-size", type=int, help="override the 352800-sample chunk (smoke tests only)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--side", choices=("ours", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args)
        return

    sides = ["ours"] if args.skip_reference or not args.reference_root else ["reference", "ours"]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for side in sides:
            out = Path(tmp) / f"{side}.npy"
            cmd = [sys.executable, __file__, "--side", side, "--out", str(out), *_forward(args)]
            print(f"running {side} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            if proc.returncode != 0:
                sys.exit(f"{side} failed:\n{proc.stderr[-3000:]}")
            results[side] = json.loads(proc.stdout.strip().splitlines()[-1])
            results[side]["vocals"] = np.load(out)

    print(describe(threads=args.threads or None))
    print(
        f"\nBS-RoFormer viperx size, {args.seconds:g} s stereo 44.1 kHz, device {args.device}, {args.dtype}"
    )
    print(f"{'side':<10} {'wall s':>9} {'peak RSS MiB':>13} {'chunks':>7}")
    for side, r in results.items():
        print(f"{side:<10} {r['wall_s']:>9.1f} {r['peak_rss_mib']:>13.0f} {r['chunks']:>7}")
    if len(results) == 2:
        ours, ref = results["ours"], results["reference"]
        rel = float(
            np.linalg.norm(ours["vocals"] - ref["vocals"]) / max(np.linalg.norm(ref["vocals"]), 1e-12)
        )
        print(f"speed-up (reference / ours): {ref['wall_s'] / ours['wall_s']:.2f}x")
        print(f"peak memory ratio (ours / reference): {ours['peak_rss_mib'] / ref['peak_rss_mib']:.2f}")
        print(f"relative L2 of vocals (ours vs reference): {rel:.2e}")


def _forward(args: argparse.Namespace) -> list[str]:
    out = ["--seconds", str(args.seconds), "--device", args.device, "--dtype", args.dtype]
    out += ["--threads", str(args.threads), "--batch-size", str(args.batch_size)]
    if args.chunk_size:
        out += ["--chunk-size", str(args.chunk_size)]
    if args.reference_root:
        out += ["--reference-root", args.reference_root]
    for extra in args.reference_path:
        out += ["--reference-path", extra]
    if args.reference_config:
        out += ["--reference-config", args.reference_config]
    return out


if __name__ == "__main__":
    main()
