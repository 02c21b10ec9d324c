"""The voice-over-rate report with the real speech detector."""

from __future__ import annotations

import json

import numpy as np
import pytest
from media_factory import make_audio_file
from stand_ins import tone
from typer.testing import CliRunner

from deepsound import cli
from deepsound.audio import Audio
from deepsound.cli.vo_rate import FileSpeech, speech_rate


def test_rate_counts_only_readable_files():
    rows = [
        FileSpeech("a", 0.5, segments=2),
        FileSpeech("b", 0.0),
        FileSpeech("c", None, error="unreadable"),
        FileSpeech("d", 0.1, segments=1),
    ]
    assert speech_rate(rows) == pytest.approx(2 / 3)
    assert speech_rate([FileSpeech("x", None, error="e")]) is None


def test_cli_on_tones_and_noise_reports_zero(tmp_path):
    make_audio_file(tmp_path / "tone.wav", tone(2.0, 16000, 300.0))
    rng = np.random.default_rng(0)
    make_audio_file(tmp_path / "noise.wav", Audio(0.1 * rng.standard_normal(32000).astype(np.float32), 16000))
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    result = CliRunner().invoke(cli.app, ["vo-rate", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["speech_rate"] == 0.0
    errors = [f for f in data["files"] if f["error"]]
    assert len(errors) == 1 and "broken.wav" in errors[0]["path"]


def test_real_clips_with_and_without_speech(media_dir):
    clips = [str(media_dir / "00000003.gt.mp4"), str(media_dir / "1QBsc_IXg8U_000750.mp4")]
    result = CliRunner().invoke(cli.app, ["vo-rate", *clips, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["speech_rate"] == 0.5
    by_name = {f["path"].rsplit("/", 1)[-1]: f for f in data["files"]}
    assert by_name["00000003.gt.mp4"]["speech_ratio"] > 0.5
    assert by_name["1QBsc_IXg8U_000750.mp4"]["speech_ratio"] == 0.0


def test_missing_path_is_one_line_error(tmp_path):
    result = CliRunner().invoke(cli.app, ["vo-rate", str(tmp_path / "nothing")])
    assert result.exit_code != 0 and "nothing" in result.output and "Traceback" not in result.output
