"""User text reaches the terminal literally: brackets in names and messages are never rich markup."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deepsound import cli


def _run(*args: str):
    return CliRunner().invoke(cli.app, list(args))


@pytest.mark.parametrize("name", ["x[/]y.mp4", "clip [take 2].mp4", "[red]z[/red].mp4"])
def test_bracketed_file_names_are_printed_as_they_are(tmp_path, name):
    missing = tmp_path / name
    result = _run("generate", str(missing), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "MarkupError" not in result.output
    assert f"{missing}: file not found" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_toml_key_names_its_table(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text("[pipeline]\nbogus_key = 1\n", encoding="utf-8")
    result = _run("config", "show", "--config", str(config))
    assert result.exit_code == 2, result.output
    assert "unknown setting 'bogus_key' in [pipeline]" in result.output


def test_bracketed_rows_of_a_table_stay(tmp_path):
    bad = tmp_path / "odd [take 2].wav"
    bad.write_bytes(b"not audio")
    result = _run("vo-rate", str(bad))
    assert "[take 2]" in result.output.replace("\n", ""), result.output
    assert "Traceback" not in result.output
