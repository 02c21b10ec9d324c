"""Trust on first use for files whose publisher states no checksum.

Some files (ImageBind, the VideoLLaMA2 and SigLIP folders, two small configurations) have
no checksum anywhere public that this project could find, and a guessed one would turn
every correct download into an error. Their registry entry says ``checksum="unknown"``.
The first time such a file is used, its SHA-256 and size are recorded in the cache
(``<cache>/recorded/<name>.json``) and a warning says so; from then on every copy is checked
against that record exactly as against a published checksum, so a later corrupted or
substituted file is caught. Every clip's trace names the files taken on first use and the
record they were checked against.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from deepsound.errors import WeightsError
from deepsound.weights.digest import cached_digest
from deepsound.weights.registry import WeightFile

log = logging.getLogger(__name__)

_lock = threading.Lock()
_used: dict[str, dict[str, Any]] = {}


def record_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "recorded"


def _record_path(cache_dir: Path, entry: WeightFile) -> Path:
    return record_dir(cache_dir) / f"{entry.name}.json"


def read_record(cache_dir: Path, entry: WeightFile) -> dict[str, Any] | None:
    try:
        data = json.loads(_record_path(cache_dir, entry).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_record(cache_dir: Path, entry: WeightFile, record: dict[str, Any]) -> None:
    path = _record_path(cache_dir, entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _note(entry: WeightFile, record: dict[str, Any], first: bool) -> None:
    with _lock:
        _used[entry.name] = {**record, "checksum": "trust on first use", "first_use_now": first}


def used_on_trust() -> dict[str, dict[str, Any]]:
    """Files without a published checksum used in this process: name → record (for the trace)."""
    with _lock:
        return {k: dict(v) for k, v in _used.items()}


def _file_facts(path: Path, stamp_dir: Path | None) -> dict[str, Any]:
    return {"sha256": cached_digest(path, "sha256", stamp_dir), "size": path.stat().st_size}


def check_file(entry: WeightFile, path: Path, *, cache_dir: Path, stamp_dir: Path | None) -> None:
    """Record ``path``'s SHA-256 and size on first use; afterwards, fail when a copy differs."""
    facts = _file_facts(Path(path), stamp_dir)
    _check(entry, {"files": {entry.filename: facts}}, cache_dir=cache_dir, where=Path(path))


def check_folder(entry: WeightFile, folder: Path, *, cache_dir: Path, stamp_dir: Path | None) -> None:
    """The same for a folder checkpoint: every file's SHA-256 and size, and the hub commit when known."""
    folder = Path(folder)
    files = {
        str(p.relative_to(folder)): _file_facts(p, stamp_dir)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }
    _check(entry, {"files": files, "revision": _snapshot_revision(folder)}, cache_dir=cache_dir, where=folder)


def _snapshot_revision(folder: Path) -> str | None:
    """A Hugging Face cache snapshot folder is named after its commit."""
    name = folder.name
    return name if len(name) == 40 and all(c in "0123456789abcdef" for c in name) else None


def _check(entry: WeightFile, found: dict[str, Any], *, cache_dir: Path, where: Path) -> None:
    known = read_record(cache_dir, entry)
    if known is None:
        record = {
            "name": entry.name,
            "source": entry.source,
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "recorded_from": str(where),
            **found,
        }
        _write_record(cache_dir, entry, record)
        log.warning(
            "%s: no published checksum; recorded the SHA-256 of this first copy (%s) in %s — trust on "
            "first use: later copies are checked against it",
            entry.name,
            where,
            _record_path(cache_dir, entry),
        )
        _note(entry, record, first=True)
        return
    differ = sorted(
        name
        for name in set(known.get("files", {})) | set(found["files"])
        if known.get("files", {}).get(name) != found["files"].get(name)
    )
    if differ:
        shown = ", ".join(differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
        raise WeightsError(
            f"{where}: differs from the copy of {entry.name} first used here ({shown}; recorded "
            f"{known.get('recorded_at', '?')} in {_record_path(cache_dir, entry)}); the file is damaged "
            f"or another file: delete it and run `deepsound weights download {entry.name}`, or delete the "
            f"record if the publisher changed the file"
        )
    _note(entry, known, first=False)
