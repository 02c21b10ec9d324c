"""The whole method per clip, this project beside the reference DeepSound-V1 pipeline, in one run.

Both sides run in their own process (so that peak memory is each one's own) on the same clips with
the same models: the seeded tiny models of ``tests/data/reference_pipeline`` (MMAudio small_16k's
structure, BS-RoFormer at the viperx layout and chunking, the tiny VideoLLaMA2 checkpoint; the
MLLM's answer text fixed on both sides: the canonical plan and a voice-over verdict). The reference
is its own ``Pipeline.run`` plus ``demo.py``'s final copy (``tools/goldens/deepsound_pipeline.py
bench``); ours is ``--preset paper``. With the "all voice" separator every clip takes the longest
path: plan, generate, judge, separate, silence, ``neg`` regeneration.

Printed per clip: wall and CPU seconds per step and in total, MLLM calls, bytes written; per side:
model load (once per batch on both sides) and peak RSS. At tiny size the models cost little, so
what differs is what the pipelines do around them (temporary videos, re-reading and resampling
files, writing); the models' own speed at full size is in bench_generation.py, bench_separation.py
and bench_videollama2.py.

    python benchmarks/bench_pipeline.py --official /path/to/DeepSound-V1 \\
        --reference-python /tmp/venv/bin/python --reference-pythonpath /tmp/transformers-4.42.3 \\
        [--clips A.mp4 ...] [--repeat 2] [--threads 1]
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "reference_pipeline"
STEPS = ("step0", "step1", "step2", "step3", "step4", "neg")
OUR_STAGES = {"plan": "step0", "generate": "step1", "judge": "step2", "separate": "step3", "silence": "step4"}


def ours(clips: list[Path], threads: int, separator_kind: str, residency: str) -> dict[str, Any]:
    """Our ``--preset paper`` over ``clips`` with the golden's models; step times from the paused run."""
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from test_reference_pipeline import FixedAnswers, generator, separator

    from deepsound.models.videollama2.reasoner import VideoLlamaReasoner, VideoLlamaSettings
    from deepsound.pipeline import Pipeline
    from deepsound.registry import Components
    from deepsound.settings import load_settings
    from deepsound.testing.videollama2_checkpoint import write_tiny_checkpoint

    torch.set_num_threads(threads)
    meta = json.loads((DATA / "meta.json").read_text(encoding="utf-8"))
    golden = torch.load(DATA / "golden.pt", weights_only=False)
    s = meta["settings"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_tiny_checkpoint(Path(tmp) / "vl2", seed=s["mllm_seed"])
        wall, cpu = time.perf_counter(), time.process_time()
        reasoner = VideoLlamaReasoner.load(
            VideoLlamaSettings(
                mode="cot", cot_model=str(folder), device="cpu", max_new_tokens=s["mllm_tokens"]
            )
        )
        FixedAnswers(reasoner, {"step0": meta["plan_text"], "step2": meta["verdicts"]["A"]})
        models = {"generator": generator(golden, meta), "separator": separator(meta, separator_kind)}
        settings = load_settings(
            "paper",
            overrides={
                "pipeline": {"device": "cpu", "generator": {"variant": "small_16k"}, "residency": residency},
                "run": {"duration": s["duration"], "seed": s["seed"], "num_steps": s["num_steps"]},
            },
        )
        components = Components(settings.pipeline, overrides={**models, "mllm": reasoner})
        pipe = Pipeline(settings.pipeline, components)
        load = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
        rows = []
        for index, clip in enumerate(clips):
            out = Path(tmp) / f"run{index}"
            timings: list[dict[str, Any]] = []
            wall, cpu = time.perf_counter(), time.process_time()
            stages = pipe.stages(clip, out, settings.run)
            stage, mark = None, (wall, cpu)
            while True:
                try:
                    following = next(stages)
                except StopIteration as done:
                    result = done.value
                    following = None
                now = (time.perf_counter(), time.process_time())
                name = OUR_STAGES.get(stage or "", stage)
                if name in STEPS:
                    timings.append({"step": name, "wall": now[0] - mark[0], "cpu": now[1] - mark[1]})
                mark, stage = now, following
                if following is None:
                    break
                pipe.residency.prepare(following)
            files = [p for p in out.rglob("*") if p.is_file()]
            rows.append(
                {
                    "clip": clip.name,
                    "wall": time.perf_counter() - wall,
                    "cpu": time.process_time() - cpu,
                    "timings": timings,
                    "mllm_calls": [None] * result.trace.mllm_call_count,
                    "bytes_written": sum(p.stat().st_size for p in files),
                    "fallback": result.fallback,
                }
            )  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"load": load, "clips": rows, "peak_rss_mib": peak}


def reference(args: argparse.Namespace, clips: list[Path]) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (args.reference_pythonpath, env.get("PYTHONPATH")) if p)
    command = [
        args.reference_python,
        str(REPO / "tools" / "goldens" / "deepsound_pipeline.py"),
        "bench",
        "--official",
        str(args.official),
        "--separator",
        args.separator,
        "--threads",
        str(args.threads),
        "--clips",
        *map(str, clips),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"reference run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def our_side(args: argparse.Namespace, clips: list[Path]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--side", "ours", "--threads", str(args.threads)]
    command += ["--separator", args.separator, "--residency", args.residency, "--clips", *map(str, clips)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"our run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def per_step(row: dict[str, Any], key: str) -> dict[str, float]:
    out = dict.fromkeys(STEPS, 0.0)
    for t in row["timings"]:
        out[t["step"]] += t[key]
    return out


def table(mine: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    lines = [
        "| clip | side | " + " | ".join(STEPS) + " | total wall | total CPU | MLLM calls | bytes written |"
    ]
    lines.append("|---" * (len(STEPS) + 6) + "|")
    for a, b in zip(mine["clips"], ref["clips"], strict=True):
        for side, row in (("DeepSound", a), ("reference", b)):
            wall, cpu = per_step(row, "wall"), per_step(row, "cpu")
            cells = [f"{wall[s]:.2f}/{cpu[s]:.2f}" for s in STEPS]
            lines.append(
                f"| {row['clip']} | {side} | " + " | ".join(cells)
                + f" | {row['wall']:.2f} | {row['cpu']:.2f} | {len(row['mllm_calls'])} | {row['bytes_written']:,} |"
            )  # fmt: skip
    return lines


def summary(mine: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    n = len(mine["clips"])

    def per_clip(side: dict[str, Any], key: str) -> float:
        return (side["load"][key] + sum(r[key] for r in side["clips"])) / n

    rows = [
        ("model load, once per batch (wall s)", mine["load"]["wall"], ref["load"]["wall"]),
        ("per clip over the batch, loads amortised (wall s)", per_clip(mine, "wall"), per_clip(ref, "wall")),
        ("per clip over the batch, loads amortised (CPU s)", per_clip(mine, "cpu"), per_clip(ref, "cpu")),
        ("per clip without loads (wall s)", sum(r["wall"] for r in mine["clips"]) / n,
         sum(r["wall"] for r in ref["clips"]) / n),
        ("MLLM calls per clip", sum(len(r["mllm_calls"]) for r in mine["clips"]) / n,
         sum(len(r["mllm_calls"]) for r in ref["clips"]) / n),
        ("bytes written per clip", sum(r["bytes_written"] for r in mine["clips"]) / n,
         sum(r["bytes_written"] for r in ref["clips"]) / n),
        ("peak RSS (MiB)", mine["peak_rss_mib"], ref["peak_rss_mib"]),
    ]  # fmt: skip
    lines = ["| per batch | DeepSound | reference | ratio |", "|---|---|---|---|"]
    for label, a, b in rows:
        lines.append(f"| {label} | {a:,.2f} | {b:,.2f} | {a / b if b else float('nan'):.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, help="checkout of GiantAILab/DeepSound-V1")
    parser.add_argument(
        "--reference-python", default=sys.executable, help="interpreter with its dependencies"
    )
    parser.add_argument(
        "--reference-pythonpath", default="", help="prepended to PYTHONPATH (transformers 4.42.3)"
    )
    parser.add_argument("--clips", type=Path, nargs="+", default=sorted((DATA / "clips").glob("*.mp4")))
    parser.add_argument(
        "--repeat", type=int, default=1, help="the clip list this many times (a longer batch)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--separator", choices=("all_voice", "seeded"), default="all_voice")
    parser.add_argument("--residency", choices=("all", "one"), default="all")
    parser.add_argument("--side", choices=("both", "ours"), default="both", help=argparse.SUPPRESS)
    args = parser.parse_args()
    clips = [c.resolve() for c in args.clips] * args.repeat
    if args.side == "ours":
        print(json.dumps(ours(clips, args.threads, args.separator, args.residency)))
        return
    if args.official is None:
        raise SystemExit("--official: a checkout of GiantAILab/DeepSound-V1 is needed for the reference side")
    from machine import describe

    print(f"# bench_pipeline: {len(clips)} clips, 1 s generated, 2 steps, tiny seeded models, "
          f"separator {args.separator}, residency {args.residency}")  # fmt: skip
    print(f"# {describe(args.threads)}")
    mine = our_side(args, clips)
    ref = reference(args, clips)
    print("\nper clip, seconds wall/CPU per step\n")
    print("\n".join(table(mine, ref)))
    print("\n" + "\n".join(summary(mine, ref)))


if __name__ == "__main__":
    main()
