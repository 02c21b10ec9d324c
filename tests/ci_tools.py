"""Tools that ``.ci/run`` installs (Chromium, espeak-ng): a test may skip without one locally, never in CI.

A test that skips in CI is a test that does not exist. Where ``CI`` is set (``CI=true``, as
``.ci/run`` and the usual CI services set it), a missing tool fails the run, naming the tool.
"""

from __future__ import annotations

import os
import shutil

import pytest

_TRUE = {"1", "true", "yes", "on"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in _TRUE


def require_tool(name: str, found: bool, hint: str) -> None:
    """Skip (locally) or fail (in CI) when ``name`` is missing; call at module level or in a test."""
    if found:
        return
    if in_ci():
        pytest.fail(f"{name} is missing but .ci/run installs it and CI is set: {hint}", pytrace=False)
    pytest.skip(f"{name} is not installed ({hint})", allow_module_level=True)


def tool_available(name: str, hint: str) -> bool:
    """``shutil.which(name)`` for ``skipif`` markers; in CI a missing tool fails instead of skipping."""
    found = shutil.which(name) is not None
    if not found and in_ci():
        pytest.fail(f"{name} is missing but .ci/run installs it and CI is set: {hint}", pytrace=False)
    return found


def need_path(path, package: str):  # noqa: ANN001, ANN201 - a pathlib.Path in, the same out
    """``path`` when a package ``.ci/run`` installs put it there; else skip (locally) or fail (in CI)."""
    require_tool(str(path), path.exists(), f"apt-get install {package}")
    return path
