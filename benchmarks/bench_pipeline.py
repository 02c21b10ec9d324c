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

``--memory``: peak memory at full size on the CPU (float32), one clip, each side in its own process:
the reference's own ``Pipeline.run`` with its own model loading (``tools/goldens/_pipeline_full.py``),
then ours with ``--residency all`` and ``one``, all on the same seeded MMAudio small_16k and
BS-RoFormer viperx files (written once by the reference tool into ``--weights``, 8 GB) and the tiny
VideoLLaMA2 with the golden's fixed answers. Per side: peak RSS, the ratio to the reference, seconds
and loads; ours also RSS per stage. Then the GPU estimate from parameter sizes (no GPU measured).
``--results DIR`` keeps each side's numbers so a later run re-measures only what is missing.
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


# ------------------------------------------------------------------ --memory: full size, CPU
def _rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _layout() -> dict[str, str]:
    sys.path.insert(0, str(REPO / "tools"))
    from goldens._pipeline_full import LAYOUT

    return LAYOUT


class _Sampler:
    """RSS every 20 ms, per stage: the lowest and highest seen while the stage ran."""

    def __init__(self) -> None:
        import threading

        self.stage, self.peaks, self.lows = "load", {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, stage = _rss_gib(), self.stage
            self.peaks[stage] = max(self.peaks.get(stage, 0.0), rss)
            self.lows[stage] = min(self.lows.get(stage, rss), rss)
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def memory(residency: str, clip: Path, weights: Path, threads: int) -> dict[str, Any]:
    """Our ``--preset paper`` on one clip at full size: MMAudio small_16k and BS-RoFormer viperx
    loaded from the seeded files in ``weights`` through the published-file loaders (``--weights``),
    the tiny VideoLLaMA2 with the golden's fixed answers (plan; voice-over), the "all voice"
    separator: plan, generate, judge, separate, silence, ``neg``. RSS per stage.
    """
    sys.path.insert(0, str(REPO / "tests"))
    import torch
    from test_reference_pipeline import FixedAnswers

    from deepsound.models.videollama2.reasoner import VideoLlamaReasoner, VideoLlamaSettings
    from deepsound.pipeline import Pipeline
    from deepsound.registry import Components
    from deepsound.settings import load_settings
    from deepsound.testing.videollama2_checkpoint import write_tiny_checkpoint

    torch.set_num_threads(threads)  # as the reference side does
    meta = json.loads((DATA / "meta.json").read_text(encoding="utf-8"))
    s = meta["settings"]
    files = {name: str(weights / rel) for name, rel in _layout().items()}
    files["bs_roformer_viperx_config"] = str(REPO / "src/deepsound/data/bs_roformer_viperx.yaml")  # lists
    sampler = _Sampler()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_tiny_checkpoint(Path(tmp) / "vl2", seed=s["mllm_seed"])
        reasoner = VideoLlamaReasoner.load(
            VideoLlamaSettings(
                mode="cot", cot_model=str(folder), device="cpu", max_new_tokens=s["mllm_tokens"]
            )
        )
        FixedAnswers(reasoner, {"step0": meta["plan_text"], "step2": meta["verdicts"]["A"]})
        settings = load_settings(
            "paper",
            overrides={
                "pipeline": {"device": "cpu", "generator": {"variant": "small_16k"}, "residency": residency,
                             "weights": files},
                "run": {"duration": 1.0, "seed": s["seed"], "num_steps": s["num_steps"], "write_video": False},
            },
        )  # fmt: skip
        components = Components(settings.pipeline, overrides={"mllm": reasoner})
        pipe = Pipeline(settings.pipeline, components)
        stages = pipe.stages(clip, tmp, settings.run)
        while True:
            try:
                stage = next(stages)
            except StopIteration as done:
                result = done.value
                break
            pipe.residency.prepare(stage)  # a release counts in the stage that ends, a load in the next
            sampler.stage = stage
    sampler.stop()
    generator = components.get("generator")
    parts = getattr(generator, "parts", None)
    return {
        "residency": residency,
        "peaks_gib": sampler.peaks,
        "lows_gib": sampler.lows,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "seconds": time.perf_counter() - start,
        "events": pipe.residency.events,
        "builds": dict(components.load_seconds),
        "part_loads": dict(parts.loads) if parts is not None else {},
        "part_load_seconds": {k: round(v, 1) for k, v in parts.load_seconds.items()}
        if parts is not None
        else {},
        "steps": {record.step: record.seconds for record in result.trace.steps},
        "generator_seconds": {
            record.step: {
                **record.evidence.get("stage_seconds", {}),
                **record.evidence.get("conditions_ahead_seconds", {}),
            }
            for record in result.trace.steps
            if "stage_seconds" in record.evidence
        },
        "load_avg": os.getloadavg(),
        "fallback": result.fallback,
    }


def reference_memory(args: argparse.Namespace, clip: Path) -> dict[str, Any]:
    """The reference's own ``Pipeline.run`` at full size on the same files, in its environment."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (args.reference_pythonpath, env.get("PYTHONPATH")) if p)
    tool = [args.reference_python, str(REPO / "tools" / "goldens" / "deepsound_pipeline.py")]
    if not (args.weights / _layout()["clip_dfn5b"]).is_file():  # written once, kept for later runs
        subprocess.run([*tool, "bench-weights", str(args.official), str(args.weights)], env=env, check=True)
    start = time.perf_counter()
    command = [*tool, "bench", "--official", str(args.official), "--full", str(args.weights.resolve())]
    command += ["--threads", str(args.threads), "--clips", str(clip)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"reference run failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["seconds"] = time.perf_counter() - start
    return out


def _params(manifest: dict[str, list[int]]) -> int:
    import math

    return sum(math.prod(shape) for shape in manifest.values())


def gpu_estimate() -> list[str]:
    """Weights only, from the committed parameter manifests: what ``all`` and ``one`` must hold.

    ``one`` keeps the largest of the MLLM, the separator and (staged) MMAudio's largest group:
    CLIP's image tower, CLIP's text tower, Synchformer, or network + VAE + vocoder.
    """
    import math

    data = REPO / "tests" / "data"

    def load(path: str) -> Any:
        return json.loads((data / path).read_text(encoding="utf-8"))

    clip = load("mmaudio_cond/clip_vit_h14_378_manifest.json")
    image = sum(math.prod(shape) for key, shape in clip.items() if key.startswith("visual."))
    text = _params(clip) - image
    sync = _params(load("mmaudio_cond/synchformer_manifest.json"))
    networks = load("mmaudio/network_manifests.json")
    mllm = load("videollama2/manifest.json")
    synthesis = {
        "large_44k": _params(networks["large_44k"]) + _params(load("mmaudio_dec/manifest_vae_44k.json"))
        + _params(load("mmaudio_dec/manifest_bigvgan_v2_44k.json")),
        "small_16k": _params(networks["small_16k"]) + _params(load("mmaudio_dec/manifest_vae_16k.json"))
        + _params(load("mmaudio_dec/manifest_bigvgan_16k.json")),
    }  # fmt: skip
    mllm_n = _params(mllm["checkpoint"]) + _params(mllm["vision_tower"])
    separator = _params(load("bs_roformer/manifest_viperx.json"))
    sizes = {
        "VideoLLaMA2.1-7B-AV (LLM, towers, projectors)": mllm_n,
        "MMAudio large_44k (network, CLIP, Synchformer, VAE, BigVGAN-v2)": image
        + text
        + sync
        + synthesis["large_44k"],
        "MMAudio small_16k (network, CLIP, Synchformer, VAE, BigVGAN)": image
        + text
        + sync
        + synthesis["small_16k"],
        "BS-RoFormer viperx": separator,
        "staged MMAudio: CLIP image tower": image,
        "staged MMAudio: CLIP text tower": text,
        "staged MMAudio: Synchformer": sync,
        "staged MMAudio large_44k: network + VAE + BigVGAN-v2": synthesis["large_44k"],
        "staged MMAudio small_16k: network + VAE + BigVGAN": synthesis["small_16k"],
    }
    lines = ["| model | parameters | 16-bit weights (GiB) |", "|---|---|---|"]
    for name, n in sizes.items():
        lines.append(f"| {name} | {n / 1e9:.2f} B | {n * 2 / 2**30:.2f} |")
    generator = sizes["MMAudio large_44k (network, CLIP, Synchformer, VAE, BigVGAN-v2)"]
    group = max(image, text, sync, synthesis["large_44k"])
    rows = [
        ("paper demo, `all` (MLLM + large_44k + separator)", mllm_n + generator + separator),
        ("paper demo, `one` (the largest alone: the MLLM)", max(mllm_n, generator, separator)),
        ("generator + separator only (judge without an MLLM), `all`", generator + separator),
        ("generator + separator only, `one` before staging (whole MMAudio)", max(generator, separator)),
        ("generator + separator only, `one` staged (largest MMAudio group)", max(group, separator)),
    ]
    for label, n in rows:
        lines.append(f"| **{label}** | | {n * 2 / 2**30:.2f} |")
    return lines


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


MEMORY_STAGES = ("load", "plan", "condition image", "condition motion", "condition text", "generate",
                 "judge", "separate", "silence", "neg", "write")  # fmt: skip


def memory_report(args: argparse.Namespace, clip: Path) -> None:
    """``--memory``: the reference, then ours with ``all`` and ``one``, each in its own process."""
    from machine import describe

    if args.official is None:
        raise SystemExit("--official: a checkout of GiantAILab/DeepSound-V1 is needed for the reference side")
    print(
        "# bench_pipeline --memory: the whole method on one clip at full size, CPU, float32, seeded weights"
    )
    print("# MMAudio small_16k (2 steps) and BS-RoFormer viperx from the same files on both sides, the tiny")
    print(
        "# VideoLLaMA2 with fixed answers, 'all voice' separator: plan, generate, judge, separate, silence, neg"
    )
    print(f"# 1 s of {clip.name}; {describe(args.threads)}")
    ref = _kept(args.results, "reference", lambda: reference_memory(args, clip))
    rows = {}
    for policy in ("all", "one"):
        command = [sys.executable, __file__, "--side", "memory", "--residency", policy, "--clips", str(clip)]
        command += ["--weights", str(args.weights.resolve()), "--threads", str(args.threads)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])}

        def run(command: list[str] = command, env: dict[str, str] = env, policy: str = policy) -> Any:
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise SystemExit(f"--residency {policy} failed:\n{done.stderr[-3000:]}")
            return json.loads(done.stdout.strip().splitlines()[-1])

        rows[policy] = _kept(args.results, f"ours_{policy}", run)
    print("\n".join(memory_tables(ref, rows)))
    print("\nGPU: an estimate from parameter sizes (weights only, no activations), not a measurement\n")
    print("\n".join(gpu_estimate()))


def _kept(folder: Path | None, side: str, measure: Any) -> Any:
    """A side's measurement, kept in ``folder`` (``--results``): a later run reuses it and says so
    (full-size sides take many minutes each; one can be re-measured alone by deleting its file)."""
    if folder is None:
        return measure()
    path = folder / f"{side}.json"
    if path.is_file():
        print(f"# {side}: kept from {path}")
        return json.loads(path.read_text(encoding="utf-8"))
    result = measure()
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result), encoding="utf-8")
    return result


def _loads(row: dict[str, Any]) -> str:
    """The large models' loads: MMAudio whole (``all``) or part by part (``one``), BS-RoFormer."""
    separator = sum(1 for action, kind in row["events"] if (action, kind) == ("build", "separator")) or 1
    tail = f"BS-RoFormer {separator} ({row['builds'].get('separator', 0):.0f} s)"
    if row["part_loads"]:
        parts = ", ".join(f"{k} {v}" for k, v in row["part_loads"].items())
        seconds = sum(row["part_load_seconds"].values())
        return f"MMAudio by parts: {parts} ({seconds:.0f} s); {tail}"
    return f"MMAudio whole 1 ({row['builds'].get('generator', 0):.0f} s); {tail}"


def memory_tables(ref: dict[str, Any], rows: dict[str, dict[str, Any]]) -> list[str]:
    ref_peak = ref["peak_rss_mib"] / 1024
    ref_steps = per_step(ref["clips"][0], "wall")
    lines = [
        "",
        "| side | peak RSS (GiB) | ÷ reference | seconds (loads included) | model loads |",
        "|---|---|---|---|---|",
    ]
    lines.append(f"| reference (its Pipeline.run) | {ref_peak:.2f} | 1.00 | {ref['seconds']:.0f} "
                 f"| MLLM, MMAudio (all parts), BS-RoFormer: once, at start ({ref['load']['wall']:.0f} s) |")  # fmt: skip
    for policy, row in rows.items():
        lines.append(f"| DeepSound `--residency {policy}` | {row['peak_rss_gib']:.2f} | "
                     f"{row['peak_rss_gib'] / ref_peak:.2f} | {row['seconds']:.0f} | {_loads(row)} |")  # fmt: skip
    lines += [
        "",
        "RSS (GiB) during each of our stages, lowest–highest (a stage's model is brought in at its start)",
        "",
    ]
    shown = [st for st in MEMORY_STAGES if any(st in r["peaks_gib"] for r in rows.values())]
    lines.append("| residency | " + " | ".join(shown) + " |")
    lines.append("|---" * (len(shown) + 1) + "|")
    for policy, row in rows.items():
        cells = [
            f"{row['lows_gib'][st]:.2f}–{row['peaks_gib'][st]:.2f}" if st in row["peaks_gib"] else ""
            for st in shown
        ]
        lines.append(f"| {policy} | " + " | ".join(cells) + " |")
    lines += ["", "seconds per step (wall; a load inside a step counts in it: every model under `all`, MMAudio's parts "
              "under `one`; under `one` the separator loads in the pause before its stage)", ""]  # fmt: skip
    names = {"step1": "step1_generate", "step2": "step2_judge_voice_over", "step3": "step3_remove_voice_over",
             "step4": "step4_check_silence", "neg": "postprocess_neg"}  # fmt: skip
    lines.append("| side | " + " | ".join(names.values()) + " | part loads (s) |")
    lines.append("|---" * (len(names) + 2) + "|")
    lines.append("| reference | " + " | ".join(f"{ref_steps[k]:.1f}" for k in names) + " | |")
    for policy, row in rows.items():
        cells = [
            f"{next((v for k, v in row['steps'].items() if k.startswith(n)), float('nan')):.1f}"
            for n in names.values()
        ]
        loads = ", ".join(f"{k} {v}" for k, v in row["part_load_seconds"].items())
        lines.append(f"| {policy} | " + " | ".join(cells) + f" | {loads} |")
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
    parser.add_argument(
        "--memory",
        action="store_true",
        help="instead: peak RSS at full size, the reference beside --residency all and one (~8 GiB)",
    )
    parser.add_argument(
        "--results", type=Path, help="--memory: keep each side's result here, reuse it next time"
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=Path(tempfile.gettempdir()) / "deepsound-bench-full-weights",
        help="--memory: folder of the seeded full-size files (written by the reference tool once, 8 GB)",
    )
    parser.add_argument("--side", choices=("both", "ours", "memory"), default="both", help=argparse.SUPPRESS)
    args = parser.parse_args()
    clips = [c.resolve() for c in args.clips] * args.repeat
    if args.side == "ours":
        print(json.dumps(ours(clips, args.threads, args.separator, args.residency)))
        return
    if args.side == "memory":
        print(json.dumps(memory(args.residency, clips[0], args.weights, args.threads)))
        return
    if args.memory:
        memory_report(args, clips[0])
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
