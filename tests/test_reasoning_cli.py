"""``deepsound judge VIDEO…``: one JSON line per file, for videos with their own audio track.

Runs the command function through typer (as the CLI registers it) on clips
written with PyAV, with the real speech detector, and with the real tiny
Qwen2.5-Omni thinker exported to a checkpoint folder and passed as
``--mllm-model`` (the same loading path as a downloaded model).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from media_factory import make_video, tone
from typer.testing import CliRunner

from deepsound.audio import Audio
from deepsound.cli.judge import judge_command
from deepsound.testing import tiny as toy

app = typer.Typer()
app.command()(judge_command)
app.command("noop")(lambda: None)  # two commands: typer keeps `judge` as a sub-command name


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("judge")
    rng = np.random.default_rng(0)
    noise = Audio((0.05 * rng.standard_normal(32000)).astype(np.float32), 16000)
    return {
        "tone": make_video(folder / "tone.mp4", duration=2.0, fps=10, size=(96, 64), audio=tone(2.0, 44100)),
        "noise": make_video(folder / "noise.mp4", duration=2.0, fps=10, size=(96, 64), audio=noise),
        "mute": make_video(folder / "mute.mp4", duration=2.0, fps=10, size=(96, 64)),
    }


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_speech_judge_writes_one_line_per_video(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "verdicts.jsonl"
    videos = [str(clips[name]) for name in ("tone", "noise", "mute")]
    result = CliRunner().invoke(app, ["judge-command", *videos, "--judge", "speech", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    assert [Path(r["video"]).name for r in rows] == ["tone.mp4", "noise.mp4", "mute.mp4"]
    assert all(r["has_voice_over"] is False and r["mllm_calls"] == 0 for r in rows)
    assert rows[0]["judge"] == "speech" and rows[0]["evidence"]["speech_segments"] == []
    assert rows[0]["evidence"]["speech_ratio"] == 0.0
    assert rows[2]["evidence"]["decided_by"] == "no_audio_track"
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows


def test_a_bad_file_gets_an_error_line_and_the_others_go_on(clips: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["judge-command", str(tmp_path / "missing.mp4"), str(clips["tone"]), "--judge", "speech"]
    )
    assert result.exit_code == 1
    rows = _lines(result.stdout)
    assert "missing.mp4" in rows[0]["error"] and rows[1]["has_voice_over"] is False


def test_mllm_judge_loads_a_local_checkpoint_and_reports_its_chain_of_thought(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    folder = toy.omni_reasoner(seed=3).export_checkpoint(tmp_path / "tiny-omni")
    result = CliRunner().invoke(
        app,
        ["judge-command", str(clips["noise"]), "--judge", "mllm", "--mllm-model", str(folder)]
        + ["--device", "cpu", "--offline", "--max-new-tokens", "8"],
    )
    assert result.exit_code == 0, result.output
    (row,) = _lines(result.stdout)
    assert row["judge"] == "mllm" and row["mllm_calls"] == 1 and row["seconds"] < 30
    assert isinstance(row["cot"], str) and row["evidence"]["mllm_model"] == str(folder)
    assert "speech_ratio" in row["evidence"]  # the cheap detector's evidence comes along


def test_missing_mllm_offline_stops_with_one_line(clips: dict[str, Path]) -> None:
    from deepsound.errors import WeightsError

    with pytest.raises(WeightsError):
        judge_command([clips["noise"]], judge="mllm", mllm_model="Qwen/Qwen2.5-Omni-7B", offline=True)
