"""Which published files are missing, and one message for all of them.

A user who runs the default pipeline offline (or whose download breaks) should learn every
missing file at once — where it comes from, how large it is and where to put it — not one
per attempt. Which files a configuration needs is declared by the component entries
(:func:`deepsound.registry.files_for`); this module only looks for them and words the message.
"""

from __future__ import annotations

from pathlib import Path

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


def download_size(entries: list[WeightFile]) -> int:
    return sum(e.size or 0 for e in entries)


def _where_from(entry: WeightFile) -> str:
    """A short, real origin: the host and repository or release, never a pseudo-URL."""
    if entry.hub_repo is not None:
        return f"huggingface.co/{entry.hub_repo}"
    parts = (entry.url or "?").split("://", 1)[-1].split("/")
    host = {"raw.githubusercontent.com": "github.com"}.get(parts[0], parts[0])
    return "/".join([host, *parts[1:3]])  # host/owner/project: where to look, short enough for one line


def _gb(size: int | None) -> str:
    if size is None:
        return "size unknown"
    return f"{size / 1e9:.2f} GB" if size >= 10_000_000 else f"{size / 1e3:.0f} KB"


def missing_message(entries: list[WeightFile], weights_dir: Path | None, *, offline: bool | str) -> str:
    """A summary line, one indented line per missing file, and what to do.

    ``offline`` is what switched downloads off: ``"--offline"``, the environment variable's
    name, ``True`` (one of them), or ``False`` when the files could not be downloaded.
    """
    cache = default_cache_dir()
    root = str(weights_dir) if weights_dir is not None else "<weights-dir>"
    if offline is True:
        offline = offline_reason(True) or "--offline"
    total = (
        _gb(download_size(entries))
        if all(e.size for e in entries)
        else f"at least {_gb(download_size(entries))}"
    )
    why = f"downloads are off ({offline})" if offline else "they could not be downloaded"
    count = f"{len(entries)} weight file{'s' if len(entries) != 1 else ''}"
    lines = [f"{count} missing ({total}) and {why}:"]
    width = max(len(e.relpath) for e in entries)
    lines += [f"  {e.relpath:<{width}}  {_gb(e.size):>8}  from {_where_from(e)}" for e in entries]
    command = f"deepsound weights download {' '.join(e.name for e in entries)}"
    if offline == "--offline":
        then = "then run again (or leave out --offline to fetch them on first use)"
    elif offline:
        then = f"then run again (or unset {offline.split('=')[0]} to fetch them on first use)"
    else:
        then = "then run again"
    lines.append(
        f"Put them under {root}/ (pass --weights-dir) or {cache}/, or run `{command}` on a machine online; {then}."
    )
    return "\n".join(lines)
