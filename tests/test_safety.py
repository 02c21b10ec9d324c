"""A user's files are never destroyed, errors are one line, and results get the user's umask."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from media_factory import make_video
from PIL import Image
from stand_ins import FixedPlanner, ScalingSeparator, ScriptedJudge, ToneGenerator, tone
from typer.testing import CliRunner

from deepsound import cli, media
from deepsound.batch import read_inputs, run_batch
from deepsound.cli import options as cli_options
from deepsound.config import PipelineConfig, RunOptions
from deepsound.errors import MediaError, OutputError
from deepsound.files import OutputLock, atomic_output
from deepsound.pipeline import Pipeline
from deepsound.registry import Components


class SlowToneGenerator(ToneGenerator):
    """Holds its first call until released, so a second run can be started meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def generate(self, request):
        self.entered.set()
        self.release.wait(10)
        return super().generate(request)


class ExplodingSeparator:
    name = "exploding"

    def separate(self, audio):
        raise MediaError("separation failed on purpose")


def pipeline(generator=None, separator=None, judge=False) -> Pipeline:
    cfg = PipelineConfig()
    overrides = {
        "generator": generator or ToneGenerator(),
        "judge": ScriptedJudge(judge),
        "separator": separator or ScalingSeparator(0.5),
        "planner": FixedPlanner(),
    }
    return Pipeline(cfg, Components(cfg, overrides))


@pytest.fixture()
def clip(tmp_path) -> Path:
    folder = tmp_path / "footage"
    folder.mkdir()
    return make_video(folder / "clip.mp4", duration=1.2, fps=25, size=(96, 64), audio=tone(1.2, 44100))


def test_output_into_the_inputs_own_folder_never_replaces_the_input(clip):
    before = clip.read_bytes()
    result = pipeline().run(clip, clip.parent, RunOptions(duration=1.0))
    assert clip.read_bytes() == before  # the user's video (and its own audio) untouched
    assert result.outputs["video"] == clip.parent / "clip.deepsound.mp4"
    assert (clip.parent / "clip.deepsound.trace.json").exists()
    # a rerun into that folder recognises the finished clip under its new name
    summary = run_batch(pipeline(), read_inputs(clip.parent), clip.parent, RunOptions(duration=1.0))
    assert len(summary.items) == 1  # our own clip.deepsound.mp4 is not taken for an input
    assert summary.count("skipped") == 1 and clip.read_bytes() == before


def test_outputs_get_the_users_umask(tmp_path, clip):
    old = os.umask(0o022)
    try:
        pipeline().run(clip, tmp_path / "out", RunOptions(duration=1.0))
        with atomic_output(tmp_path / "x.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    for path in [*(tmp_path / "out").iterdir(), tmp_path / "x.txt"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_too_short_videos_fail_before_any_model_loads_with_the_minimum(tmp_path):
    one_frame = make_video(tmp_path / "one_frame.mp4", duration=0.04, fps=25, size=(64, 48))
    short = make_video(tmp_path / "short.mp4", duration=0.2, fps=25, size=(64, 48))
    pipe = Pipeline(PipelineConfig())  # the real registry: nothing may be built for these
    for video in (one_frame, short):
        with pytest.raises(MediaError, match=rf"{video.name}: 0\.\d\d s of video; .*at least 0\.64 s"):
            pipe.run(video, tmp_path / "out", RunOptions())
    assert not any(pipe.components.is_built(k) for k in ("generator", "judge", "separator", "mllm"))
    result = CliRunner().invoke(cli.app, ["generate", str(one_frame), "-o", str(tmp_path / "cli")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and "one_frame.mp4" in lines[0] and "0.64" in lines[0]
    with pytest.raises(MediaError, match="asked for"):
        pipe.run(
            make_video(tmp_path / "ok.mp4", duration=1.0, size=(64, 48)), tmp_path, RunOptions(duration=0.3)
        )


def test_still_image_input_writes_audio_only(tmp_path):
    picture = tmp_path / "still.png"
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(picture)
    gen = ToneGenerator()
    result = pipeline(generator=gen).run(picture, tmp_path / "out", RunOptions(duration=1.5))
    assert "video" not in result.outputs and not (tmp_path / "out" / "still.mp4").exists()
    assert media.read_audio(result.outputs["audio"]).duration == pytest.approx(1.5, abs=0.01)
    assert gen.requests[0].duration == 1.5
    assert "still-image input" in " ".join(result.trace.warnings)


def test_second_writer_of_one_name_fails_and_cannot_delete_the_first_ones_files(tmp_path, clip):
    out = tmp_path / "out"
    slow = SlowToneGenerator()
    errors: list[BaseException] = []

    def first_run() -> None:
        try:
            pipeline(generator=slow).run(clip, out, RunOptions(duration=1.0))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=first_run)
    thread.start()
    assert slow.entered.wait(10)
    # a second run of the same clip into the same folder (and one that would fail and clean up)
    with pytest.raises(OutputError, match="another run .* is writing 'clip'"):
        pipeline(separator=ExplodingSeparator(), judge=True).run(clip, out, RunOptions(duration=1.0))
    slow.release.set()
    thread.join(20)
    assert not errors
    assert {"clip.wav", "clip.mp4", "clip.trace.json", "clip.step1.wav"} <= {p.name for p in out.iterdir()}
    assert not (out / ".clip.lock").exists()


def test_a_dead_runs_lock_is_taken_over(tmp_path, clip):
    out = tmp_path / "out"
    out.mkdir()
    import socket

    (out / ".clip.lock").write_text(f"{socket.gethostname()} 999999999")  # no such process
    pipeline().run(clip, out, RunOptions(duration=1.0))
    assert (out / "clip.trace.json").exists() and not (out / ".clip.lock").exists()
    with OutputLock(out, "clip"), pytest.raises(OutputError, match="another run"):
        OutputLock(out, "clip").__enter__()


def test_batch_summary_is_written_after_every_clip_and_keeps_results_on_rerun(tmp_path, monkeypatch):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a", "b", "c"):
        make_video(folder / f"{name}.mp4", duration=1.0, fps=25, size=(64, 48))
    out = tmp_path / "out"
    seen: list[dict] = []

    def look(outcome) -> None:  # called after each clip: the summary on disk already holds it
        seen.append(json.loads((out / "batch_summary.json").read_text()))

    pipe = pipeline(judge=True)
    run_batch(pipe, read_inputs(folder), out, RunOptions(duration=1.0), on_item=look)
    assert [len(s["items"]) for s in seen] == [1, 2, 3] and not seen[0]["complete"]
    final = json.loads((out / "batch_summary.json").read_text())
    assert final["complete"] and final["done"] == 3
    again = run_batch(pipe, read_inputs(folder), out, RunOptions(duration=1.0))
    assert again.count("skipped") == 3
    assert all(i.has_voice_over is True and i.fallback is None for i in again.items)  # kept, not null
    assert all(i.seconds > 0 for i in again.items)


def test_cli_generate_into_the_inputs_folder_keeps_the_input(clip, monkeypatch):
    monkeypatch.setattr(cli_options, "build_pipeline", lambda settings: pipeline())
    before = clip.read_bytes()
    result = CliRunner().invoke(
        cli.app, ["generate", str(clip), "-o", str(clip.parent), "--duration", "1", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert clip.read_bytes() == before and (clip.parent / "clip.deepsound.mp4").exists()
