"""Seconds and peak memory of one FoleyCrafter generation: DeepSound beside the official inference.

Both sides load the same official-format files (small configurations, weights seeded by key name,
``deepsound.testing.foleycrafter_checkpoint``) and make audio for the same clip, seed, prompt and
steps, each in its own worker process run one after the other: ours with this Python, the official
code (``--official`` checkout) with ``--official-python`` (a Python holding its pinned diffusers
0.25.1 / transformers 4.30.2; the golden script's recipe runs it, hard-coded ``cuda`` replaced by
the CPU). Each side reads the clip its own way (PyAV here, moviepy there). The table gives each
side's load and generation seconds and peak resident memory, ratios ours / official, and the
relative L2 distance between the two waveforms (equal output is part of the result). The sides
alternate ``--repeat`` times and each side's fastest run counts (load on a shared machine only adds).

    python benchmarks/bench_foleycrafter.py --official /path/to/FoleyCrafter \\
        --official-python /path/to/venv/bin/python [--frames 16 --width 256 --steps 4]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "foleycrafter"
PROMPT = "footsteps on gravel"


def make_clip(path: Path, seconds: float = 2.0, fps: int = 25) -> Path:
    """A moving bright square on a gradient: something for the onset detector to see."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("h264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.tile(np.linspace(30, 140, 160, dtype=np.uint8)[None, :, None], (120, 1, 3))
            x = (i * 6) % 130
            img[40:70, x : x + 30] = 240 if (i // 8) % 2 else 90
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ------------------------------------------------------------------ workers
def worker_ours(args: argparse.Namespace) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    import diffusers  # noqa: F401 - imported before the clock starts, as on the official side
    import transformers  # noqa: F401

    from deepsound.interfaces import GenerationRequest
    from deepsound.models.foleycrafter.generator import FoleyCrafterGenerator
    from deepsound.models.foleycrafter.layout import Files
    from deepsound.models.foleycrafter.settings import FoleyCrafterSettings

    torch.set_num_threads(args.threads)
    root = Path(args.files)
    start = time.perf_counter()
    files = Files.in_folders(root / "auffusion", root / "foleycrafter", root / "image_encoder")
    generator = FoleyCrafterGenerator.from_files(
        files, FoleyCrafterSettings(width=args.width, frames=args.frames)
    )
    loaded = time.perf_counter() - start
    request = GenerationRequest(
        video=Path(args.video), prompt=PROMPT, duration=args.duration, seed=args.seed, num_steps=args.steps
    )
    start = time.perf_counter()
    wave = generator.generate_waveform(request)
    seconds = time.perf_counter() - start
    return {"load": loaded, "generate": seconds, "peak_gib": peak_gib(), "wave": wave.tolist()}


def worker_official(args: argparse.Namespace) -> dict:
    import torch

    sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "src")]
    from goldens._common import imported_from
    from goldens.foleycrafter import _load_official, _run, _stub_unused_imports

    torch.set_num_threads(args.threads)
    _stub_unused_imports()  # imports diffusers
    import transformers  # noqa: F401

    root = Path(args.files)
    with imported_from(Path(args.official), "foleycrafter"):
        from foleycrafter.utils.util import read_frames_with_moviepy

        start = time.perf_counter()
        models = _load_official({k: root / k for k in ("auffusion", "foleycrafter", "image_encoder")})
        loaded = time.perf_counter() - start
        start = time.perf_counter()
        frames, _ = read_frames_with_moviepy(str(args.video), max_frame_nums=args.frames)
        result = _run(
            models, frames, args.duration, PROMPT, "", args.seed, width=args.width, steps=args.steps
        )
        seconds = time.perf_counter() - start
    wave = (result["wave_int16"].float() / 32768).tolist()
    return {"load": loaded, "generate": seconds, "peak_gib": peak_gib(), "wave": wave}


# ------------------------------------------------------------------ driver
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, help="checkout of open-mmlab/FoleyCrafter")
    parser.add_argument("--official-python", default=sys.executable, help="a Python with its dependencies")
    parser.add_argument("--video", type=Path, help="a clip (default: a 2 s synthetic one)")
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (official: 150)")
    parser.add_argument("--width", type=int, default=256, help="spectrogram columns (official: 1024)")
    parser.add_argument("--steps", type=int, default=4, help="PNDM steps (official: 25)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per side, alternating; the fastest counts"
    )
    parser.add_argument("--worker", choices=("ours", "official"), help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = (worker_ours if args.worker == "ours" else worker_official)(args)
        Path(args.result).write_text(json.dumps(result), encoding="utf-8")
        return
    if args.official is None:
        parser.error("--official is required (a checkout of open-mmlab/FoleyCrafter)")
    sys.path.insert(0, str(ROOT / "src"))
    from deepsound.testing.foleycrafter_checkpoint import write_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        layout = json.loads((DATA / "tiny_files.json").read_text(encoding="utf-8"))
        configs = json.loads((DATA / "tiny_configs.json").read_text(encoding="utf-8"))
        write_tiny_checkpoint(Path(tmp) / "files", layout, configs, seed=0)
        video = args.video or make_clip(Path(tmp) / "clip.mp4", args.duration)
        runs: dict[str, list[dict]] = {"ours": [], "official": []}
        for _, (side, python) in itertools.product(
            range(args.repeat), (("ours", sys.executable), ("official", args.official_python))
        ):
            out = Path(tmp) / f"{side}.json"
            command = [
                python,
                __file__,
                "--worker",
                side,
                "--files",
                str(Path(tmp) / "files"),
                "--result",
                str(out),
            ]
            command += ["--video", str(video), "--duration", str(args.duration), "--frames", str(args.frames)]
            command += ["--width", str(args.width), "--steps", str(args.steps), "--seed", str(args.seed)]
            command += ["--threads", str(args.threads), "--official", str(args.official)]
            env = dict(os.environ, PYTHONPATH="")
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{side} worker failed:\n{done.stderr[-3000:]}")
            runs[side].append(json.loads(out.read_text(encoding="utf-8")))
    # a shared machine's load only ever adds time: each side's fastest run, its largest memory peak
    results = {
        side: {
            "load": min(r["load"] for r in rs),
            "generate": min(r["generate"] for r in rs),
            "peak_gib": max(r["peak_gib"] for r in rs),
            "wave": rs[0]["wave"],
        }
        for side, rs in runs.items()
    }
    report(args, results)


def report(args: argparse.Namespace, results: dict) -> None:
    import torch

    ours, official = results["ours"], results["official"]
    a, b = torch.tensor(ours["wave"]), torch.tensor(official["wave"])
    distance = ((a - b).norm() / b.norm()).item() if a.shape == b.shape else float("nan")
    print(f"# FoleyCrafter, {describe(args.threads)}")
    print(
        f"# small size (tiny configs, seeded weights), {args.duration:g} s clip, {args.frames} frames, "
        f"{args.width} columns, {args.steps} steps, fp32 CPU, best of {args.repeat} alternating runs; "
        f"waveform rel. L2 ours vs official: {distance:.2e}"
    )
    print(f"| {'what':<22} | {'DeepSound':>10} | {'official':>10} | {'ratio':>6} |")
    print(f"|{'-' * 24}|{'-' * 12}|{'-' * 12}|{'-' * 8}|")
    for key, label in (("load", "load (s)"), ("generate", "generate (s)"), ("peak_gib", "peak memory (GiB)")):
        x, y = ours[key], official[key]
        print(f"| {label:<22} | {x:>10.2f} | {y:>10.2f} | {x / y:>6.2f} |")


if __name__ == "__main__":
    main()
