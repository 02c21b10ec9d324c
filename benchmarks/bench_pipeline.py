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


# ------------------------------------------------------------------ --residency, full size, CPU
def _rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _full_small_16k() -> Any:
    """MMAudio small_16k at full size (CLIP ViT-H, Synchformer, VAE, BigVGAN) with seeded weights."""
    import torch

    from deepsound.models.mmaudio.clip import ClipConditioner
    from deepsound.models.mmaudio.generator import MMAudioGenerator
    from deepsound.models.mmaudio.network import MMAudioNetwork
    from deepsound.models.mmaudio.synchformer import SynchformerEncoder
    from deepsound.models.mmaudio.vae import _VAE_CONFIGS, _VOCODER_CONFIGS, AudioDecoder
    from deepsound.models.mmaudio.vae_network import MelVAE
    from deepsound.models.mmaudio.variants import get_variant
    from deepsound.models.mmaudio.vocoder import BigVGAN

    variant = get_variant("small_16k")
    torch.manual_seed(0)
    parts = [MMAudioNetwork(variant.network), ClipConditioner.from_pretrained(None), SynchformerEncoder()]
    parts += [MelVAE(_VAE_CONFIGS["16k"]), BigVGAN(_VOCODER_CONFIGS["16k"])]
    with torch.no_grad():
        for module in parts:
            for p in module.parameters():
                p.normal_(0.0, 0.02)
        parts[0].latent_mean.zero_()
        parts[0].latent_std.fill_(1.0)
    parts[3].fold()
    return MMAudioGenerator(
        parts[0], parts[1], parts[2], AudioDecoder("16k", parts[3], parts[4]), mode="16k", variant="small_16k"
    )


def memory(residency: str, clip: Path) -> dict[str, Any]:
    """One clip through generate, judge, separate, silence and ``neg`` at full size; RSS per stage.

    The judge says "voice-over" without a model (the 7B MLLM does not fit this measurement) and the
    separator takes everything as voice, so both large models are needed, the generator twice.
    """
    import threading

    sys.path.insert(0, str(REPO / "tests"))
    from test_reference_pipeline import all_voice

    from deepsound.config import GeneratorConfig, PipelineConfig, RunOptions, SeparatorConfig
    from deepsound.interfaces import VoiceOverVerdict
    from deepsound.models.bs_roformer.config import BsRoformerConfig
    from deepsound.models.bs_roformer.network import build_model
    from deepsound.models.bs_roformer.separator import BsRoformerSeparator
    from deepsound.pipeline import Pipeline
    from deepsound.registry import register
    from deepsound.testing.equivalence import fill_seeded

    class AlwaysVoiceOver:
        name = "always"

        def judge(self, video: Any, audio: Any) -> VoiceOverVerdict:
            return VoiceOverVerdict(True, self.name)

    builds: list[str] = []

    def viperx(config: Any, components: Any) -> BsRoformerSeparator:
        builds.append("separator")
        return BsRoformerSeparator(all_voice(fill_seeded(build_model(BsRoformerConfig.viperx()), 0)))

    def generator(config: Any, components: Any) -> Any:
        builds.append("generator")
        return _full_small_16k()

    register("generator", "full_small_16k", generator)
    register("separator", "viperx_all_voice", viperx)
    register("judge", "always", lambda config, components: AlwaysVoiceOver())
    config = PipelineConfig(
        device="cpu",
        residency=residency,
        judge="always",
        generator=GeneratorConfig(name="full_small_16k"),
        separator=SeparatorConfig(name="viperx_all_voice"),
    )
    pipe = Pipeline(config)
    peaks: dict[str, float] = {}
    lows: dict[str, float] = {}
    current = ["start"]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss, stage = _rss_gib(), current[0]
            peaks[stage] = max(peaks.get(stage, 0.0), rss)
            lows[stage] = min(lows.get(stage, rss), rss)
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    options = RunOptions(duration=1.0, num_steps=2, mode="s4", postprocess="neg", write_video=False)
    with tempfile.TemporaryDirectory() as tmp:
        stages = pipe.stages(clip, tmp, options)
        while True:
            try:
                stage = next(stages)
            except StopIteration as done:
                result = done.value
                break
            pipe.residency.prepare(stage)  # a release counts in the stage that ends, a load in the next
            current[0] = stage
    stop.set()
    thread.join()
    return {
        "residency": residency,
        "peaks_gib": peaks,
        "lows_gib": lows,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "seconds": time.perf_counter() - start,
        "events": pipe.residency.events,
        "builds": builds,
        "fallback": result.fallback,
    }


def _params(manifest: dict[str, list[int]]) -> int:
    import math

    return sum(math.prod(shape) for shape in manifest.values())


def gpu_estimate() -> list[str]:
    """Weights only, from the committed parameter manifests: what ``all`` and ``one`` must hold."""
    data = REPO / "tests" / "data"

    def load(path: str) -> Any:
        return json.loads((data / path).read_text(encoding="utf-8"))

    clip_sync_vae = _params(load("mmaudio_cond/clip_vit_h14_378_manifest.json")) + _params(
        load("mmaudio_cond/synchformer_manifest.json")
    )
    networks = load("mmaudio/network_manifests.json")
    mllm = load("videollama2/manifest.json")
    sizes = {
        "VideoLLaMA2.1-7B-AV (LLM, towers, projectors)": _params(mllm["checkpoint"]) + _params(mllm["vision_tower"]),
        "MMAudio large_44k (network, CLIP, Synchformer, VAE, BigVGAN-v2)": _params(networks["large_44k"])
        + clip_sync_vae + _params(load("mmaudio_dec/manifest_vae_44k.json"))
        + _params(load("mmaudio_dec/manifest_bigvgan_v2_44k.json")),
        "MMAudio small_16k (network, CLIP, Synchformer, VAE, BigVGAN)": _params(networks["small_16k"])
        + clip_sync_vae + _params(load("mmaudio_dec/manifest_vae_16k.json"))
        + _params(load("mmaudio_dec/manifest_bigvgan_16k.json")),
        "BS-RoFormer viperx": _params(load("bs_roformer/manifest_viperx.json")),
    }  # fmt: skip
    lines = ["| model | parameters | 16-bit weights (GiB) |", "|---|---|---|"]
    for name, n in sizes.items():
        lines.append(f"| {name} | {n / 1e9:.2f} B | {n * 2 / 2**30:.1f} |")
    paper = [n for k, n in sizes.items() if "small_16k" not in k]
    lines.append(f"| **paper demo, `all`** (MLLM + large_44k + separator) | | {sum(paper) * 2 / 2**30:.1f} |")
    lines.append(f"| **paper demo, `one`** (the largest alone) | | {max(paper) * 2 / 2**30:.1f} |")
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
        help="instead: peak RSS of --residency all and one at full size (~6 GiB)",
    )
    parser.add_argument("--side", choices=("both", "ours", "memory"), default="both", help=argparse.SUPPRESS)
    args = parser.parse_args()
    clips = [c.resolve() for c in args.clips] * args.repeat
    if args.side == "ours":
        print(json.dumps(ours(clips, args.threads, args.separator, args.residency)))
        return
    if args.side == "memory":
        print(json.dumps(memory(args.residency, clips[0])))
        return
    if args.memory:
        from machine import describe

        print(
            "# bench_pipeline --memory: MMAudio small_16k and BS-RoFormer viperx at full size, seeded, CPU fp32,"
        )
        print(
            f"# 1 s of {clips[0].name}, 2 steps; generate, separate (all voice), neg. {describe(args.threads)}"
        )
        rows = []
        for policy in ("one", "all"):
            command = [
                sys.executable,
                __file__,
                "--side",
                "memory",
                "--residency",
                policy,
                "--clips",
                str(clips[0]),
            ]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])}
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise SystemExit(f"--residency {policy} failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        stages = ["generate", "judge", "separate", "silence", "neg", "write"]
        print("\nRSS (GiB) during each stage, lowest–highest, its model brought in first")
        print("\n| residency | " + " | ".join(stages) + " | peak RSS (GiB) | seconds | loads |")
        print("|---" * (len(stages) + 4) + "|")
        for row in rows:
            cells = [
                f"{row['lows_gib'].get(stage, float('nan')):.2f}–{row['peaks_gib'].get(stage, float('nan')):.2f}"
                for stage in stages
            ]
            builds = len(row["builds"])
            print(f"| {row['residency']} | " + " | ".join(cells)
                  + f" | {row['peak_rss_gib']:.2f} | {row['seconds']:.0f} | {builds} |")  # fmt: skip
        print(f"\nratio one/all: {rows[0]['peak_rss_gib'] / rows[1]['peak_rss_gib']:.2f}")
        print("\nGPU: an estimate from parameter sizes (weights only, no activations), not a measurement\n")
        print("\n".join(gpu_estimate()))
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
