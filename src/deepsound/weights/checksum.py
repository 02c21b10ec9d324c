"""Checking a weight file against its registry entry, without re-hashing gigabytes every run.

Hashing a 4 GB checkpoint takes tens of seconds, so a finished verification
leaves a small stamp (JSON) in the cache: the file's resolved path, size,
modification time and the digest found. The next run trusts the stamp while
size and mtime are unchanged; any rewrite of the file invalidates it. Stamps
live in the cache rather than beside the file because weight folders are often
read-only or shared.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from deepsound.errors import WeightsError
from deepsound.weights.registry import WeightFile

Verify = Literal["none", "size", "checksum"]
VERIFY_MODES: tuple[str, ...] = ("none", "size", "checksum")

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


def check_size(entry: WeightFile, path: Path) -> None:
    """Raise when the size is known and differs (a truncated or wrong file)."""
    if entry.size is None:
        return
    actual = path.stat().st_size
    if actual != entry.size:
        raise WeightsError(
            f"{path}: wrong size for {entry.name} ({entry.filename}): expected {entry.size} bytes, "
            f"found {actual}; the file is incomplete or a different file; "
            f"delete it and run `deepsound weights download {entry.name}`"
        )


def verify_file(
    entry: WeightFile,
    path: Path,
    *,
    verify: Verify = "checksum",
    stamp_dir: Path | None = None,
    recompute: bool = False,
    trust_first_use: bool = True,
) -> Path:
    """Check ``path`` against ``entry``; return it, or raise :class:`WeightsError` saying why.

    ``"none"`` only requires the file to exist, ``"size"`` also compares the
    byte count, ``"checksum"`` additionally compares the published digest, or for a file
    whose checksum is ``"unknown"`` the one recorded when it was first used
    (:mod:`deepsound.weights.trust`; ``trust_first_use=False`` for a user's own file, which must
    never become the record).
    """
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, not {verify!r}")
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: file not found (expected {entry.name}, {entry.filename})")
    if verify == "none":
        return path
    check_size(entry, path)
    if verify == "checksum" and trust_first_use and entry.trust_on_first_use and stamp_dir is not None:
        from deepsound.weights import trust  # trust hashes through this module's stamps

        check = trust.check_folder if entry.folder else trust.check_file
        check(
            entry,
            path.parent if entry.folder else path,
            cache_dir=Path(stamp_dir).parent,
            stamp_dir=stamp_dir,
        )
    if verify == "checksum" and entry.checksum_algorithm is not None:
        algorithm, expected = entry.checksum_algorithm, entry.checksum_hex
        assert algorithm is not None and expected is not None
        actual = cached_digest(path, algorithm, stamp_dir, recompute=recompute)
        if actual != expected:
            raise WeightsError(
                f"{path}: checksum mismatch for {entry.name} ({entry.filename}): "
                f"expected {algorithm}:{expected}, got {algorithm}:{actual}"
            )
    return path
