"""Bad numbers, bad inputs and bad output folders fail in one line before any weights or model."""

from __future__ import annotations

import json
import math
import os

import pytest
from media_factory import make_video
from stand_ins import tone
from typer.testing import CliRunner

from deepsound import cli
from deepsound.cli import options as cli_options
from deepsound.files import write_json


@pytest.fixture()
def clip(tmp_path):
    return make_video(tmp_path / "clip.mp4", duration=1.2, fps=25, size=(96, 64), audio=tone(1.2, 44100))


@pytest.fixture()
def no_pipeline(monkeypatch):
    """Reaching the weights check or the model load is itself the failure here."""

    def refuse(settings):
        raise AssertionError("the pipeline was built before the input was checked")

    monkeypatch.setattr(cli_options, "build_pipeline", refuse)


def _run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli.app, list(args), env=env)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--seed", str(10**29), "seed must be in [0, 2**63 - 1]"),
        ("--seed", "-1", "seed must be in [0, 2**63 - 1]"),
        ("--cfg", "inf", "cfg must be a finite number"),
        ("--cfg", "nan", "cfg must be a finite number"),
        ("--cfg", "-2", "cfg must be 0 or more"),
        ("--max-new-tokens", "-5", "max new tokens must be a whole number of at least 1"),
        ("--window", "-3", "window must be a positive number of seconds, got -3.0"),
        ("--window", "0.5", "window (0.5 s) must be longer than its overlap (1.0 s)"),
        ("--duration", "inf", "duration must be a finite number"),
    ],
)
def test_numbers_are_checked_before_any_work(clip, tmp_path, no_pipeline, option, value, message):
    result = _run("generate", str(clip), "-o", str(tmp_path / "out"), option, value)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_port_out_of_range_is_refused(no_pipeline):
    result = _run("ui", "--port", "70000")
    assert result.exit_code == 2
    assert "port must be in [1, 65535], got 70000" in result.output


def test_a_corrupt_video_is_named_before_missing_weights(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    env = {"DEEPSOUND_CACHE": str(tmp_path / "cache"), "HF_HUB_CACHE": str(tmp_path / "hf")}
    result = _run("generate", str(bad), "-o", str(tmp_path / "out"), "--offline", env=env)
    assert result.exit_code == 2, result.output
    assert "broken.mp4" in result.output and "weight" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["generate", "separate", "vo-rate"])
def test_a_symlink_loop_is_called_one(tmp_path, no_pipeline, command):
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    args = [command, str(loop)] + (["-o", str(tmp_path / "out")] if command != "vo-rate" else [])
    result = _run(*args)
    assert result.exit_code == 2, result.output
    assert "symbolic link loop" in result.output
    assert "not found" not in result.output and "no such file" not in result.output


def test_a_broken_link_is_called_one(tmp_path, no_pipeline):
    link = tmp_path / "gone.mp4"
    link.symlink_to(tmp_path / "nowhere.mp4")
    result = _run("generate", str(link))
    assert "broken symbolic link" in result.output


@pytest.mark.parametrize("below", [False, True])
def test_output_folder_that_is_a_file(clip, tmp_path, no_pipeline, below):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    target = taken / "sub" if below else taken
    result = _run("generate", str(clip), "-o", str(target))
    assert result.exit_code == 2, result.output
    assert "not a folder; give an output folder" in result.output
    assert "File exists" not in result.output
    assert taken.read_text() == "mine"


def test_json_never_holds_nan(tmp_path):
    write_json(tmp_path / "t.json", {"ratio": math.nan, "steps": [{"x": math.inf}], "ok": 1.5})

    def refuse(name):
        raise AssertionError(f"{name} in JSON")

    data = json.loads((tmp_path / "t.json").read_text(), parse_constant=refuse)
    assert data == {"ratio": None, "steps": [{"x": None}], "ok": 1.5}
