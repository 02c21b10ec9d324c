"""Batch runs and the command line, with stand-in models behind the real step loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media_factory import make_video
from stand_ins import FixedPlanner, ScalingSeparator, ScriptedJudge, ToneGenerator
from typer.testing import CliRunner

from deepsound import cli
from deepsound.batch import parse_shard, read_inputs, run_batch
from deepsound.cli import options as cli_options
from deepsound.config import PipelineConfig, RunOptions
from deepsound.errors import ConfigError
from deepsound.pipeline import Pipeline
from deepsound.registry import Components

runner = CliRunner()


def stand_in_pipeline(cfg: PipelineConfig | None = None) -> Pipeline:
    cfg = cfg or PipelineConfig()
    overrides = {
        "generator": ToneGenerator(),
        "judge": ScriptedJudge(False),
        "separator": ScalingSeparator(0.5),
        "planner": FixedPlanner(),
    }
    return Pipeline(cfg, Components(cfg, overrides))


@pytest.fixture()
def clip_folder(tmp_path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    make_video(folder / "a.mp4", duration=1.0, fps=25, size=(96, 64))
    make_video(folder / "b.mp4", duration=1.0, fps=25, size=(96, 64))
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
    (folder / "notes.txt").write_text("not a video")
    return folder


def test_batch_continues_past_bad_clip_and_resumes(clip_folder, tmp_path):
    out = tmp_path / "out"
    pipe = stand_in_pipeline()
    items = read_inputs(clip_folder)
    assert [i.video.name for i in items] == ["a.mp4", "b.mp4", "broken.mp4"]
    summary = run_batch(pipe, items, out, RunOptions(duration=1.0))
    assert (summary.count("done"), summary.count("failed")) == (2, 1)
    failed = [i for i in summary.items if i.status == "failed"][0]
    assert "broken.mp4" in failed.reason
    assert not list(out.glob("broken*"))
    saved = json.loads((out / "batch_summary.json").read_text())
    assert saved["done"] == 2 and saved["failed"] == 1
    assert saved["mllm_calls_per_clip"] == 0
    again = run_batch(pipe, items, out, RunOptions(duration=1.0))
    assert again.count("skipped") == 2 and again.count("failed") == 1


def test_csv_prompts_and_list_files(clip_folder, tmp_path):
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("path,prompt\nclips/a.mp4,rain on a roof\nclips/b.mp4\n")
    items = read_inputs(csv_file)
    assert [(i.video.name, i.prompt) for i in items] == [("a.mp4", "rain on a roof"), ("b.mp4", None)]
    pipe = stand_in_pipeline()
    run_batch(pipe, items, tmp_path / "out", RunOptions(duration=1.0, prompt="default"))
    prompts = [r.prompt for r in pipe.components.get("generator").requests]
    assert prompts == ["rain on a roof", "default"]

    txt = tmp_path / "list.txt"
    txt.write_text("# comment\nclips/a.mp4\n\n" + str(clip_folder / "b.mp4") + "\n")
    assert [i.video for i in read_inputs(txt)] == [clip_folder / "a.mp4", clip_folder / "b.mp4"]


def test_shards_split_the_list(clip_folder, tmp_path):
    items = read_inputs(clip_folder)
    assert parse_shard("1/2") == (1, 2)
    with pytest.raises(ConfigError):
        parse_shard("2/2")
    summary = run_batch(stand_in_pipeline(), items, tmp_path / "o", RunOptions(duration=1.0), shard=(1, 2))
    assert [Path(i.video).name for i in summary.items] == ["b.mp4"]
    assert (tmp_path / "o" / "batch_summary.1-of-2.json").exists()


def test_bad_batch_inputs(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_inputs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no video files"):
        read_inputs(tmp_path / "empty")


@pytest.fixture()
def stand_in_cli(monkeypatch):
    monkeypatch.setattr(cli_options, "build_pipeline", lambda settings: stand_in_pipeline(settings.pipeline))


def test_cli_generate_writes_outputs(stand_in_cli, clip_folder, tmp_path):
    out = tmp_path / "cli_out"
    result = runner.invoke(
        cli.app, ["generate", str(clip_folder / "a.mp4"), "-o", str(out), "--duration", "1"]
    )
    assert result.exit_code == 0, result.output
    assert {"a.wav", "a.mp4", "a.trace.json"} <= {p.name for p in out.iterdir()}


def test_cli_whole_video(stand_in_cli, clip_folder, tmp_path):
    out = tmp_path / "whole"
    result = runner.invoke(cli.app, ["generate", str(clip_folder / "b.mp4"), "-o", str(out), "--whole", "-q"])
    assert result.exit_code == 0, result.output
    trace = json.loads((out / "b.trace.json").read_text())
    assert trace["options"]["duration"] == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["generate", "{dir}/missing.mp4"], "missing.mp4"),
        (["generate", "{dir}/broken.mp4"], "broken.mp4"),
        (["generate", "{dir}/notes.txt"], "notes.txt"),
        (["generate", "{dir}/a.mp4", "--mode", "s9"], "mode"),
        (["generate", "{dir}/a.mp4", "--variant", "huge"], "variant"),
    ],
)
def test_cli_bad_input_is_one_line_nonzero(stand_in_cli, clip_folder, tmp_path, args, needle):
    out = tmp_path / "cli_out"
    argv = [a.format(dir=clip_folder) for a in args] + ["-o", str(out), "--duration", "1"]
    result = runner.invoke(cli.app, argv)
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_cli_unwritable_output_folder(stand_in_cli, clip_folder, tmp_path):
    blocker = tmp_path / "file_not_folder"
    blocker.write_text("x")
    result = runner.invoke(cli.app, ["generate", str(clip_folder / "a.mp4"), "-o", str(blocker / "sub")])
    assert result.exit_code != 0
    assert "file_not_folder" in result.output and "Traceback" not in result.output


def test_cli_batch_reports_failures_with_exit_1(stand_in_cli, clip_folder, tmp_path):
    out = tmp_path / "batch_out"
    result = runner.invoke(cli.app, ["batch", str(clip_folder), "-o", str(out), "--duration", "1", "-q"])
    assert result.exit_code == 1
    assert "2 done" in result.output and "1 failed" in result.output
    assert json.loads((out / "batch_summary.json").read_text())["done"] == 2
