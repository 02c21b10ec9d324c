"""Clips per minute of a batch: one process beside Ray with 1, 2, … CPU workers, tiny models.

Every side runs the same clips through the same tiny real components (the MMAudio
architecture at toy size with random weights, the real Silero speech detector,
the cascade judge and the RMS silence rule; no clip holds speech, so no MLLM or
separator loads), one torch thread per process. Ray runs on this machine only
(127.0.0.1, no dashboard, usage stats off).

Two rates are printed: ``wall`` counts from the call to the last clip, so it
includes starting the workers (processes, imports, model builds); ``running``
counts from the first worker being ready; ``all ready`` counts only the clips that finished
after the last worker was ready, over that time (the steady rate of a long batch).

Example::

    nice -n 10 python benchmarks/bench_ray_batch.py --clips 12 --workers 1 2

Measured on a 2-core virtual machine running other jobs (load average 5), 24 clips
of 1 s, 3 Euler steps, no video written:

    runner       workers  wall s  clips/min wall  clips/min running  clips/min all ready
    one process        1    12.9           111.6              130.1                130.1
    Ray                1    24.0            60.1               90.0                 90.1
    Ray                2    29.7            48.5              119.3                122.4

On two busy cores two workers cannot beat one process; the table is there to show the
per-clip cost of going through Ray at toy size and the start-up (one worker start is
10-20 s here). Run it where there are cores (or GPUs) to spare to see the scaling.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from deepsound.testing import tiny as toy

SRC = Path(__file__).resolve().parents[1] / "src"


def make_clip(path: Path, seconds: float, size: tuple[int, int], seed: int) -> None:
    """A moving gradient, no audio: enough for the pipeline to probe, decode and mux."""
    import av
    import numpy as np

    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        y, x = np.mgrid[0:height, 0:width]
        for i in range(int(seconds * 25)):
            img = np.stack([(x * 2 + i * 5 + seed * 40) % 256, (y * 3) % 256, (x + y + i) % 256], -1)
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def tiny_pipeline():  # noqa: ANN201
    """Built in whichever process calls it (each Ray worker calls it in its own)."""
    import torch

    from deepsound.config import PipelineConfig
    from deepsound.models.silero.detector import SileroSpeechDetector
    from deepsound.pipeline import Pipeline
    from deepsound.registry import Components

    torch.set_num_threads(1)
    config = PipelineConfig(device="cpu")
    overrides = {"generator": toy.mmaudio_generator(seed=0, mode="16k"), "speech": SileroSpeechDetector()}
    return Pipeline(config, Components(config, overrides))


def run_single(items, out: Path, options) -> dict:  # noqa: ANN001
    from deepsound.batch import run_batch

    start = time.perf_counter()
    pipeline = tiny_pipeline()
    ready = time.perf_counter()
    summary = run_batch(pipeline, items, out, options)
    end = time.perf_counter()
    return {
        "done": summary.count("done"),
        "wall": end - start,
        "running": end - ready,
        "steady": float("nan"),
    }


def run_ray(items, out: Path, options, workers: int) -> dict:  # noqa: ANN001
    from deepsound.distributed import RayBatch

    marks: dict[str, float] = {}
    finished: list[float] = []

    def on_event(event) -> None:  # noqa: ANN001
        if event.kind == "worker_ready":
            marks.setdefault("first_ready", time.perf_counter())
            marks["last_ready"] = time.perf_counter()
        elif event.kind == "finished":
            finished.append(time.perf_counter())

    start = time.perf_counter()
    with RayBatch(tiny_pipeline, address=None, workers=workers, gpus_per_worker=0) as pool:
        summary = pool.run(items, out, options, on_event=on_event)
        end = time.perf_counter()
    after = [t for t in finished if t > marks["last_ready"]]
    steady = 60 * len(after) / (after[-1] - marks["last_ready"]) if len(after) >= 2 else float("nan")
    return {
        "done": summary.count("done"),
        "wall": end - start,
        "running": end - marks["first_ready"],
        "steady": steady,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    # Ray reads these at import: stay on loopback, report nothing, admit only this process's token.
    os.environ.update(
        RAY_USAGE_STATS_ENABLED="0",
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(16),
        OMP_NUM_THREADS="1",
    )
    # the workers import this checkout (the factory, defined in this script, travels by value)
    os.environ["PYTHONPATH"] = str(SRC)
    sys.path.insert(0, str(SRC))
    import ray

    from deepsound.batch import read_inputs
    from deepsound.config import RunOptions

    root = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    clips = root / "clips"
    clips.mkdir()
    for i in range(args.clips):
        make_clip(clips / f"clip{i:03d}.mp4", args.seconds, (96 + 8 * (i % 4), 64), i)
    items = read_inputs(clips)
    options = RunOptions(duration=args.seconds, num_steps=args.steps, write_video=False)

    rows = [("one process", 1, run_single(items, root / "single", options))]
    ray.init(num_cpus=max(args.workers), include_dashboard=False, logging_level="WARNING")
    try:
        for workers in args.workers:
            rows.append(("Ray", workers, run_ray(items, root / f"ray{workers}", options, workers)))
    finally:
        ray.shutdown()

    base = rows[0][2]["running"]
    print(f"\n{args.clips} clips of {args.seconds:g} s, {args.steps} steps, tiny models, CPU\n")
    print(f"{'runner':<12} {'workers':>7} {'done':>5} {'wall s':>8} {'clips/min wall':>15} "
          f"{'clips/min running':>18} {'vs one process':>15} {'clips/min all ready':>20}")  # fmt: skip
    for name, workers, r in rows:
        steady = r["steady"] if workers > 1 or name != "one process" else 60 * r["done"] / r["running"]
        print(
            f"{name:<12} {workers:>7} {r['done']:>5} {r['wall']:>8.1f} {60 * r['done'] / r['wall']:>15.1f} "
            f"{60 * r['done'] / r['running']:>18.1f} {base / r['running']:>14.2f}x {steady:>20.1f}"
        )


if __name__ == "__main__":
    main()
