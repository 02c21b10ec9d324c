"""Which published files are missing, and one message for all of them.

A user who runs the default pipeline offline (or whose download breaks) should learn every
missing file at once — where it comes from, how large it is and where to put it — not one
per attempt. Which files a configuration needs is declared by the component entries
(:func:`deepsound.registry.files_for`); this module only looks for them and words the message.
"""

from __future__ import annotations

from pathlib import Path

from deepsound.weights.messages import missing_files_message
from deepsound.weights.registry import REGISTRY, WeightFile
from deepsound.weights.resolve import default_cache_dir, locate, offline_reason


def missing(
    names: list[str] | tuple[str, ...], weights_dir: Path | None, cache_dir: Path | None = None
) -> list[WeightFile]:
    """The registry entries among ``names`` that are nowhere on this machine."""
    found = []
    for name in names:
        entry = REGISTRY[name]
        if locate(entry, weights_dir=weights_dir, cache_dir=cache_dir) is None:
            found.append(entry)
    return found


def missing_message(entries: list[WeightFile], weights_dir: Path | None, *, offline: bool | str) -> str:
    """A summary line, one indented line per missing file, and what to do.

    ``offline`` is what switched downloads off: ``"--offline"``, the environment variable's
    name, ``True`` (one of them), or ``False`` when the files could not be downloaded.
    """
    if offline is True:
        offline = offline_reason(True) or "--offline"
    return missing_files_message(entries, weights_dir, offline=offline, cache_dir=default_cache_dir())
