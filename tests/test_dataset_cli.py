"""``dataset build`` fails when it built nothing, and says each skip once."""

from __future__ import annotations

from media_factory import make_video
from stand_ins import ToneGenerator
from typer.testing import CliRunner

from deepsound import registry
from deepsound.cli import app


def test_nothing_built_fails_and_each_skip_is_said_once(tmp_path):
    registry.register("generator", "dataset-cli-tone", lambda config, components: ToneGenerator())
    silent = make_video(tmp_path / "silent.mp4", duration=1.0, size=(64, 48))  # no soundtrack
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    listing = tmp_path / "videos.txt"
    listing.write_text(f"{silent}\n{broken}\n")
    result = CliRunner().invoke(
        app,
        ["dataset", "build", str(listing), "-o", str(tmp_path / "out"), "--generator", "dataset-cli-tone"]
        + ["--no-separator", "--duration", "1"],
    )
    assert result.exit_code == 2, result.output
    assert "nothing was built (2 clips skipped" in result.output
    assert result.output.count("skipped: silent.mp4") == 1, result.output
    assert result.output.count("skipped: broken.mp4") == 1, result.output
    assert f"skipped {silent}" not in result.output  # the builder's own log line: not a second time
