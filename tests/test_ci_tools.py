"""What .ci/run installs must be there in CI: a failed install stops .ci/run, a missing tool fails tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def _pytest_on(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    module = tmp_path / "test_needs_a_tool.py"
    module.write_text(
        "from ci_tools import require_tool\n"
        "require_tool('no-such-tool-here', False, 'apt-get install no-such-tool-here')\n"
        "def test_uses_it():\n    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(module),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_missing_tool_skips_locally(tmp_path):
    result = _pytest_on(tmp_path, None)
    assert result.returncode in (0, 5) and "1 skipped" in result.stdout, result.stdout  # 5: nothing ran


def test_a_missing_tool_fails_in_ci(tmp_path):
    result = _pytest_on(tmp_path, "true")
    assert result.returncode != 0, result.stdout
    assert "no-such-tool-here is missing but .ci/run installs it" in result.stdout


def _ci_run(tmp_path: Path, ci: str | None) -> tuple[subprocess.CompletedProcess, list[str]]:
    """.ci/run with a PATH where apt-get fails and python3 only records what it was asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "python3.log"
    (bin_dir / "python3").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexit 0\n')
    (bin_dir / "apt-get").write_text("#!/bin/sh\nexit 100\n")
    for tool in ("python3", "apt-get"):
        (bin_dir / tool).chmod(0o755)
    (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    if ci is not None:
        env["CI"] = ci
    bash = shutil.which("bash")
    result = subprocess.run(
        [bash, str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("dirname") is None, reason="needs bash")
def test_ci_run_stops_when_a_tool_cannot_be_installed(tmp_path):
    result, calls = _ci_run(tmp_path, "true")
    assert result.returncode == 1, result.stderr
    assert "espeak-ng could not be installed" in result.stderr
    assert not any("pytest" in call for call in calls)  # the tests never ran without their tool


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("dirname") is None, reason="needs bash")
def test_ci_run_outside_ci_goes_on_with_a_note(tmp_path):
    result, calls = _ci_run(tmp_path, None)
    assert result.returncode == 0, result.stderr
    assert "espeak-ng not installed; its tests will skip" in result.stderr
    assert "chromium not installed; its tests will skip" in result.stderr
    assert any(call.endswith("-m pytest") for call in calls)
