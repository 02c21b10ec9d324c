"""Helpers shared by the golden-making families: importing an official checkout, saving files."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import torch


def check_checkout(path: Path, marker: str, pinned: str, what: str) -> Path:
    """Resolve an official checkout and say whether it is the pinned commit.

    ``marker`` is a file that must exist inside it (so a wrong folder fails at once, with its name).
    Archives extracted without ``.git`` cannot be verified; that is said, not refused.
    """
    path = Path(path).expanduser().resolve()
    if not (path / marker).exists():
        raise SystemExit(f"{path}: not a checkout of {what} (no {marker})")
    head = None
    if (path / ".git").exists():
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            head = subprocess.run(
                ["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
            ).stdout.strip()
    if head is None:
        print(f"[{what}] {path}: no git metadata; assuming commit {pinned[:12]}", file=sys.stderr)
    elif head != pinned:
        print(f"[{what}] WARNING: {path} is at {head[:12]}, goldens pin {pinned[:12]}", file=sys.stderr)
    return path


@contextlib.contextmanager
def imported_from(path: Path, *packages: str) -> Iterator[None]:
    """Put ``path`` first on ``sys.path`` and forget any earlier import of ``packages``.

    Two checkouts may ship a package of the same name (the paper's MSST copy and upstream MSST both
    have ``models``), so each use starts from a clean module table for those names.
    """

    def forget() -> None:
        for name in list(sys.modules):
            if name.split(".")[0] in packages:
                del sys.modules[name]

    forget()
    sys.path.insert(0, str(path))
    try:
        yield
    finally:
        sys.path.remove(str(path))
        forget()


def save(obj: object, out: Path, relative: str) -> Path:
    """``torch.save`` under ``out/relative``; returns ``relative`` as a Path for the report."""
    target = out / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, target)
    return Path(relative)


def randn(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=gen)
