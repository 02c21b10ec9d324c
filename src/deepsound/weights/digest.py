"""Digests of weight files, remembered beside the cache so a multi-GB file is hashed once.

Kept apart from :mod:`deepsound.weights.checksum` so that the trust-on-first-use records can hash
files without importing the verifier that consults them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

_CHUNK = 8 * 1024 * 1024


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks (weights do not fit comfortably in memory twice)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(stamp_dir: Path, path: Path, algorithm: str) -> Path:
    key = hashlib.sha1(f"{path.resolve()}|{algorithm}".encode()).hexdigest()[:24]
    return stamp_dir / f"{key}.verified"


def _read_stamp(stamp: Path, path: Path) -> str | None:
    """Digest recorded for ``path`` if the stamp still matches its size and mtime."""
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
        stat = path.stat()
    except (OSError, ValueError):
        return None
    if data.get("size") != stat.st_size or data.get("mtime_ns") != stat.st_mtime_ns:
        return None
    digest = data.get("digest")
    return digest if isinstance(digest, str) else None


def _write_stamp(stamp: Path, path: Path, algorithm: str, digest: str) -> None:
    """Best effort: an unwritable cache only costs a re-hash next time."""
    stat = path.stat()
    payload = {
        "path": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "algorithm": algorithm,
        "digest": digest,
    }
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, stamp)
    except OSError:
        pass


def remember_digest(path: Path, algorithm: str, digest: str, stamp_dir: Path) -> None:
    """Stamp a digest computed elsewhere (e.g. on a download before its rename)."""
    _write_stamp(_stamp_path(stamp_dir, path, algorithm), path, algorithm, digest)


def cached_digest(path: Path, algorithm: str, stamp_dir: Path | None, *, recompute: bool = False) -> str:
    """Digest of ``path``, taken from a valid stamp unless ``recompute``; stamps the result."""
    stamp = _stamp_path(stamp_dir, path, algorithm) if stamp_dir is not None else None
    if stamp is not None and not recompute:
        known = _read_stamp(stamp, path)
        if known is not None:
            return known
    digest = file_digest(path, algorithm)
    if stamp is not None:
        _write_stamp(stamp, path, algorithm, digest)
    return digest
