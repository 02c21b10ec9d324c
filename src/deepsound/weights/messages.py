"""The words of the missing-weights message: one summary line and one line per file.

Apart from :mod:`deepsound.weights.requirements` (which looks files up through the resolver)
so that the resolver can word its own one-file message without importing its caller.
"""

from __future__ import annotations

from pathlib import Path

from deepsound.weights.registry import WeightFile


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


def missing_files_message(
    entries: list[WeightFile], weights_dir: Path | None, *, offline: str | bool, cache_dir: Path
) -> str:
    """A summary line, one indented line per missing file, and what to do.

    ``offline`` is what switched downloads off (``"--offline"`` or the environment variable's
    name), or ``False`` when the files could not be downloaded.
    """
    cache = cache_dir
    root = str(weights_dir) if weights_dir is not None else "<weights-dir>"
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
