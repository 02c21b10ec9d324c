"""How many MLLM calls each judge mode makes per clip, against the paper's pipeline (always 2).

The paper's pipeline asks its MLLM twice for every clip: the plan (step 0) and
the voice-over verdict (step 2). Here the plan is canonical unless asked for,
and the cascade judge asks only where Silero VAD hears speech. This script runs
every mode over a folder of clips (the real clips in ``../shared/media`` when
present, plus synthesized ones) and prints, side by side, the calls per clip,
the ratio to the reference's 2, and the time spent.

Each clip's own audio track is judged, as ``deepsound judge`` does (a clip
without an audio track gets a synthesized ambience as a stand-in for step-1
audio). The MLLM is the tiny random Qwen2.5-Omni thinker (the 7B weights are
not needed to count calls); its seconds are the tiny model's, the speech
detector's are real.

    python benchmarks/bench_judges.py [--folder DIR] [--max-new-tokens 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from machine import describe

from deepsound.audio import Audio
from deepsound.media import probe, read_audio
from deepsound.models.silero.detector import SileroSpeechDetector
from deepsound.steps.plan import CanonicalPlanner, MllmPlanner
from deepsound.steps.voice_over import CascadeJudge, MllmJudge, SpeechJudge
from deepsound.testing import tiny as toy

REPO = Path(__file__).resolve().parents[1]
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm", ".avi"}


def write_clip(
    path: Path, audio: Audio | None, seconds: float = 4.0, size: tuple[int, int] = (160, 96)
) -> Path:
    """A moving-gradient clip with ``audio`` as its AAC soundtrack (PyAV only)."""
    fps = 10
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("h264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=audio.sample_rate)
            sound.layout = "mono"
        y, x = np.mgrid[0 : size[1], 0 : size[0]]
        for i in range(int(seconds * fps)):
            pixels = np.stack([(x + 4 * i) % 256, (y * 2) % 256, np.full_like(x, 128)], -1).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if audio is not None and sound is not None:
            samples = audio.to_mono().waveform
            step = 1024
            for start in range(0, samples.shape[1], step):
                chunk = np.ascontiguousarray(samples[:, start : start + step])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = audio.sample_rate, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path


def synthesized_clips(folder: Path, seconds: float = 4.0) -> list[Path]:
    rate = 16000
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    rain = np.cumsum(rng.standard_normal(t.size)) * 0.002
    rain -= np.convolve(rain, np.ones(400) / 400, mode="same")
    tracks = {
        "synth_tone.mp4": 0.3 * np.sin(2 * np.pi * 440 * t),
        "synth_rain.mp4": rain + 0.02 * rng.standard_normal(t.size),
        "synth_engine.mp4": 0.3
        * np.sign(np.sin(2 * np.pi * 55 * t))
        * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t)),
        "synth_silence.mp4": np.zeros_like(t),
    }
    return [
        write_clip(folder / name, Audio(wave.astype(np.float32), rate), seconds)
        for name, wave in tracks.items()
    ]


def clip_audio(path: Path, seconds: float = 8.0) -> Audio:
    if probe(path).has_audio:
        return read_audio(path)
    rng = np.random.default_rng(1)
    return Audio((0.02 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_judges_"))
    clips = synthesized_clips(work)
    if args.folder.is_dir():
        clips = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) + clips
    audios = {clip: clip_audio(clip) for clip in clips}

    speech = SileroSpeechDetector()
    mllm = toy.omni_reasoner(seed=0, max_new_tokens=args.max_new_tokens)
    reports = {}
    for clip in clips:
        started = time.perf_counter()
        reports[clip] = (speech.detect(audios[clip]), time.perf_counter() - started)

    print(describe())
    print(f"{len(clips)} clips; speech heard (Silero VAD):")
    for clip in clips:
        report, seconds = reports[clip]
        print(f"  {clip.name:28s} speech ratio {report.speech_ratio:5.3f}  ({seconds * 1000:6.1f} ms)")

    modes = [
        ("reference (mllm plan + mllm judge)", MllmPlanner(mllm), MllmJudge(mllm)),
        ("mllm judge, canonical plan", CanonicalPlanner(), MllmJudge(mllm)),
        ("cascade judge, canonical plan (default)", CanonicalPlanner(), CascadeJudge(mllm, speech)),
        ("speech judge, canonical plan", CanonicalPlanner(), SpeechJudge(speech)),
    ]
    rows = []
    for label, planner, judge in modes:
        calls = 0
        verdicts = []
        started = time.perf_counter()
        for clip in clips:
            plan = planner.plan(clip)
            verdict = judge.judge(clip, audios[clip])
            calls += len(plan.mllm_calls) + len(verdict.mllm_calls)
            verdicts.append(verdict.has_voice_over)
        elapsed = time.perf_counter() - started
        rows.append((label, calls, calls / len(clips), elapsed, verdicts))

    reference = rows[0][2]
    print()
    header = f"{'mode':42s} {'MLLM calls':>10s} {'per clip':>9s} {'vs ref':>7s} {'seconds':>8s}  voice-over per clip"
    print(header)
    print("-" * len(header))
    for label, calls, per_clip, elapsed, verdicts in rows:
        marks = "".join("?" if v is None else ("Y" if v else "n") for v in verdicts)
        ratio = per_clip / reference if reference else float("nan")
        print(f"{label:42s} {calls:10d} {per_clip:9.2f} {ratio:7.2f} {elapsed:8.2f}  {marks}")
    print(
        "\nvoice-over: Y yes, n no, ? undecided (the tiny random MLLM cannot answer; the pipeline then applies "
        "its default). Seconds use the tiny MLLM on CPU and are not the 7B model's."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
