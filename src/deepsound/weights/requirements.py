"""Which published files are missing, and one message for all of them.

A user who runs the default pipeline offline (or whose download breaks) should learn every
missing file at once — where it comes from, how large it is and where to put it — not one
per attempt. Which files a configuration needs is declared by the component entries
(:func:`deepsound.registry.files_for`); this module only looks for them and words the message.
"""

from __future__ import annotations

from pathlib import Path

from deepsound.weights.registry import REGISTRY, WeightFile
from deepsound.weights.resolve import default_cache_dir, locate


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


def download_size(entries: list[WeightFile]) -> int:
    return sum(e.size or 0 for e in entries)


def missing_message(entries: list[WeightFile], weights_dir: Path | None, *, offline: bool) -> str:
    """One line naming every missing file, its size, and the three ways to provide it."""
    cache = default_cache_dir()
    root = str(weights_dir) if weights_dir is not None else "<weights-dir>"
    listed = ", ".join(f"{e.relpath} ({(e.size or 0) / 1e9:.2f} GB, from {e.source})" for e in entries)
    why = "downloads are off (--offline)" if offline else "they could not be downloaded"
    return (
        f"{len(entries)} weight file(s) missing and {why}: {listed}; put them under {root}/ "
        f"(pass --weights-dir) or {cache}/, or run `deepsound weights download "
        f"{' '.join(e.name for e in entries)}` while online (drop --offline to fetch them on first use)"
    )
