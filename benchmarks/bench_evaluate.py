"""How long ``deepsound evaluate`` takes: extraction per clip per model, cache re-use, metric stage.

Two tables:

1. **Extraction through the runner** (decode, av-benchmark's preparation, network,
   cache write), seconds per clip for each built-in audio model (random weights:
   speed does not depend on the values), on N synthetic 10 s stereo 44.1 kHz WAVs,
   batch size 1 as av-benchmark extracts ground truth; then again, when every
   feature comes from the cache (hashing the inputs, reading the manifest).
   (Each network alone, ours beside av-benchmark's, is in ``bench_eval_audio.py``.)
2. **Metric stage** on identical seeded caches of the real feature sizes: our
   :func:`compute_metrics` beside av-benchmark's ``evaluate`` (run with
   ``--official AV_BENCHMARK`` under ``--python``, the interpreter that has its
   dependencies), with the ratio.

    python benchmarks/bench_evaluate.py [--clips 8] [--official /path/to/av-benchmark --python /path/python]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tools" / "goldens")]

import av_benchmark_metrics as goldens  # noqa: E402

from deepsound.audio import Audio  # noqa: E402
from deepsound.evaluation.metrics import compute_metrics  # noqa: E402

OFFICIAL_SNIPPET = """
import json, sys, time
from pathlib import Path
import torch
sys.path[:0] = [sys.argv[1]]
import transformers.pytorch_utils as tpu
if not hasattr(tpu, "find_pruneable_heads_and_indices"):
    tpu.find_pruneable_heads_and_indices = None
import av_bench.evaluate as official
torch.set_num_threads(1)
pred, gt = Path(sys.argv[2]), Path(sys.argv[3])
# the metric stage alone: Synchformer's load is not a metric cost, and DeSync is left out on both sides
official.Synchformer = lambda: torch.nn.Linear(1, 1)
official.device = "cpu"
torch.save(torch.nn.Linear(1, 1).state_dict(), pred.parent / "sd.pth")
official._syncformer_ckpt_path = pred.parent / "sd.pth"
(gt / "synchformer_video.pth").unlink()
start = time.perf_counter()
official.evaluate(gt_audio_cache=gt, pred_audio_cache=pred, num_samples=1)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def extraction_table(clips: int, device: str) -> list[tuple[str, float, float]]:
    from deepsound.evaluation.builtin_models import PannsExtractor, PasstExtractor, VggishExtractor
    from deepsound.evaluation.cache import FeatureCache
    from deepsound.evaluation.extractors import Settings
    from deepsound.evaluation.runner import Side, extract_side
    from deepsound.evaluation.sources import discover
    from deepsound.media import write_audio
    from deepsound.models.eval import Cnn14, PaSST, VGGish

    rows = []
    settings = Settings(duration=10.0, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        gen = Path(tmp, "gen")
        gen.mkdir()
        rng = np.random.RandomState(0)
        for i in range(clips):
            for folder in (gen,):
                write_audio(
                    folder / f"clip{i:03d}.wav", Audio((0.1 * rng.randn(2, 441000)).astype(np.float32), 44100)
                )
        for name, cls, net in (
            ("PANNs Cnn14", PannsExtractor, Cnn14),
            ("VGGish", VggishExtractor, VGGish),
            ("PaSST-S", PasstExtractor, PaSST),
        ):
            model = net().eval().to(device)
            extractor = cls(settings, model, "random")
            cache_dir = Path(tmp, "out", name)
            times = []
            for _ in range(2):  # first run extracts, the second finds everything in the cache
                side = Side("generated", FeatureCache(cache_dir), discover(gen).sources)
                start = time.perf_counter()
                extract_side(side, extractor, lambda label, total: lambda: None, [])
                times.append((time.perf_counter() - start) / clips)
            first, cached = times
            rows.append((name, first, cached))
    return rows


def metric_table(official: Path | None, python: str) -> list[tuple[str, float, float | None]]:
    pred, gt = goldens.synthetic_caches("full")
    start = time.perf_counter()
    compute_metrics(pred, gt, None)
    ours = time.perf_counter() - start
    theirs = None
    if official is not None:
        with tempfile.TemporaryDirectory() as tmp:
            for side, caches in (("pred", pred), ("gt", gt)):
                Path(tmp, side).mkdir()
                for name, data in caches.items():
                    torch.save(data, Path(tmp, side, name))
            proc = subprocess.run(
                [python, "-c", OFFICIAL_SNIPPET, str(official), str(Path(tmp, "pred")), str(Path(tmp, "gt"))],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            theirs = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    return [("metric stage, 24 clips, full sizes", ours, theirs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--official", type=Path, default=None, help="av-benchmark checkout")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the official code")
    parser.add_argument("--skip-extraction", action="store_true")
    parser.add_argument("--skip-metrics", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.skip_extraction:
        print(f"| model ({args.device}) | s / clip, first run | s / clip, cached re-run |\n|---|---|---|")
        for name, first, cached in extraction_table(args.clips, args.device):
            print(f"| {name} | {first:.3f} | {cached:.4f} |")
    if args.skip_metrics:
        return
    print("\n| stage | ours (s) | av-benchmark (s) | ours / theirs |\n|---|---|---|---|")
    for name, ours, theirs in metric_table(args.official, args.python):
        ratio = f"{ours / theirs:.2f}" if theirs else "–"
        print(
            f"| {name} | {ours:.2f} | {theirs:.2f} | {ratio} |"
            if theirs
            else f"| {name} | {ours:.2f} | – | – |"
        )


if __name__ == "__main__":
    main()
