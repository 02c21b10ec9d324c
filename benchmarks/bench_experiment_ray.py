"""Items per minute of the experiment's distributed work: one process beside Ray with 1, 2 … workers.

Two jobs, each over the same files: **features** (what ``evaluate --ray`` and ``experiment --ray``
spread: PANNs Cnn14 and VGGish at full size with seeded weights, PaSST at toy size, Silero as
published; one shard per file) and **reference** (what ``reference build --ray`` spreads: Silero
judges each clip, BS-RoFormer at toy size removes the voice where it hears it). One torch
thread per process; Ray runs on this machine only (127.0.0.1, no dashboard, usage stats off).

``wall`` counts from the call to the last item (worker start-up included); ``running`` from the
first worker being ready. Example::

    nice -n 10 python benchmarks/bench_experiment_ray.py --items 12 --workers 1 2

Measured on a 2-core AMD EPYC (AVX-512) virtual machine shared with other jobs, 8 items of
5 s, ``--items 8 --seconds 5 --workers 1 2`` (the reference clips hold no speech, so only Silero
runs on them):

    job        runner       workers  done   wall s  items/min wall  items/min running  vs one process
    features   one process        1     8     11.7            41.0               48.2           1.00x
    reference  one process        1     8      1.0           496.9              496.9           1.00x
    features   Ray                1     8     25.1            19.1               26.2           0.54x
    features   Ray                2     8     56.0             8.6               18.7           0.39x
    reference  Ray                1     8     20.5            23.4              505.6           1.02x
    reference  Ray                2     8     22.4            21.4              309.5           0.62x

On two busy cores a second worker only competes for them, and each worker start (imports,
model set) costs 10-30 s; the table shows the per-item cost of going through Ray. Run it where
there are cores or GPUs to spare to see the scaling.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def extractors(settings):  # noqa: ANN001, ANN201
    """The model set each worker builds (the script's function travels to the workers by value)."""
    import torch

    from deepsound.evaluation import builtin_models as bm
    from deepsound.models.eval import Cnn14, PaSST, VGGish

    torch.manual_seed(0)
    return {
        ("panns", "audio"): bm.PannsExtractor(settings, Cnn14().eval(), "seeded"),
        ("vggish", "audio"): bm.VggishExtractor(settings, VGGish().eval(), "seeded"),
        ("passt", "audio"): bm.PasstExtractor(settings, PaSST(dim=64, depth=2, heads=4).eval(), "seeded"),
        ("silero", "audio"): bm.SileroExtractor(settings),
    }


def reference_pipeline():  # noqa: ANN201
    from deepsound.config import PipelineConfig, SeparatorConfig
    from deepsound.models.bs_roformer.config import BsRoformerConfig
    from deepsound.pipeline import Pipeline
    from deepsound.registry import register
    from deepsound.testing import tiny as toy

    config = BsRoformerConfig.tiny(chunk_size=8000, batch_size=8)
    register("separator", "tiny-roformer", lambda c, _: toy.bs_roformer_separator(seed=0, config=config))
    return Pipeline(
        PipelineConfig(judge="speech", separator=SeparatorConfig(name="tiny-roformer"), device="cpu")
    )


def make_files(folder: Path, count: int, seconds: float) -> None:
    import numpy as np

    from deepsound import media
    from deepsound.audio import Audio

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        t = np.arange(int(16000 * seconds)) / 16000
        wav = 0.3 * np.sin(2 * np.pi * (200 + 30 * i) * t) + 0.02 * rng.standard_normal(t.size)
        media.write_audio(folder / f"clip{i:03d}.wav", Audio(wav.astype("float32")[None], 16000))


def jobs(root: Path, name: str, files: Path, settings):  # noqa: ANN001, ANN201
    """A fresh job and its items (a new output folder, so nothing is done yet)."""
    from deepsound.evaluation.cache import FeatureCache
    from deepsound.evaluation.distributed_features import FeatureJob, plan_items
    from deepsound.evaluation.reference_set import ReferenceJob, fingerprint_of, method_of, reference_clips
    from deepsound.evaluation.runner import Side
    from deepsound.evaluation.sources import discover

    out = root / name
    if name.startswith("features"):
        side = Side("generated", FeatureCache(out), discover(files).sources)
        return FeatureJob(settings, extractors), plan_items(
            [(side, ["panns", "vggish", "passt", "silero"], "audio")]
        )
    fingerprint = fingerprint_of(method_of(reference_pipeline().config))
    return ReferenceJob(out, reference_pipeline, fingerprint), reference_clips(files)


def run_single(job, items) -> dict:  # noqa: ANN001
    start = time.perf_counter()
    job.setup()
    ready = time.perf_counter()
    for item in items:
        job.run(item)
    end = time.perf_counter()
    return {"done": len(items), "wall": end - start, "running": end - ready}


def run_ray(job, items, workers: int) -> dict:  # noqa: ANN001
    from deepsound.distributed import RaySettings
    from deepsound.distributed.tasks import TaskPool

    marks: dict[str, float] = {}

    def on_event(event) -> None:  # noqa: ANN001
        if event.kind == "worker_ready":
            marks.setdefault("first_ready", time.perf_counter())

    start = time.perf_counter()
    with TaskPool(job, RaySettings(address=None, workers=workers, gpus_per_worker=0)) as pool:
        summary = pool.run(items, on_event=on_event)
    end = time.perf_counter()
    return {"done": summary.count("done"), "wall": end - start, "running": end - marks["first_ready"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    os.environ.update(
        RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(16), OMP_NUM_THREADS="1", PYTHONPATH=str(SRC),
    )  # fmt: skip
    sys.path.insert(0, str(SRC))
    sys.path.insert(0, str(Path(__file__).parent))
    import ray
    import torch
    from machine import describe

    from deepsound.evaluation.extractors import Settings

    torch.set_num_threads(1)
    settings = Settings(duration=args.seconds)
    root = Path(tempfile.mkdtemp(prefix="bench_exp_ray_"))
    make_files(root / "files", args.items, args.seconds)
    rows = []
    for name in ("features", "reference"):
        rows.append(
            (name, "one process", 1, run_single(*jobs(root, f"{name}-single", root / "files", settings)))
        )
    ray.init(num_cpus=max(args.workers), include_dashboard=False, logging_level="WARNING")
    try:
        for name in ("features", "reference"):
            for workers in args.workers:
                job, items = jobs(root, f"{name}-ray{workers}", root / "files", settings)
                rows.append((name, "Ray", workers, run_ray(job, items, workers)))
    finally:
        ray.shutdown()
    print(describe())
    print(f"\n{args.items} items of {args.seconds:g} s audio, CPU, one torch thread per process\n")
    print(f"{'job':<10} {'runner':<12} {'workers':>7} {'done':>5} {'wall s':>8} {'items/min wall':>15} "
          f"{'items/min running':>18} {'vs one process':>15}")  # fmt: skip
    for name, runner, workers, r in rows:
        base = next(x for n, x_runner, _, x in rows if n == name and x_runner == "one process")["running"]
        print(f"{name:<10} {runner:<12} {workers:>7} {r['done']:>5} {r['wall']:>8.1f} "
              f"{60 * r['done'] / r['wall']:>15.1f} {60 * r['done'] / r['running']:>18.1f} "
              f"{base / r['running']:>14.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
