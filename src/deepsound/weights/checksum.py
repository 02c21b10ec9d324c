"""Checking a weight file against its registry entry, without re-hashing gigabytes every run.

Hashing a 4 GB checkpoint takes tens of seconds, so a finished verification
leaves a small stamp (JSON) in the cache: the file's resolved path, size,
modification time and the digest found. The next run trusts the stamp while
size and mtime are unchanged; any rewrite of the file invalidates it. Stamps
live in the cache rather than beside the file because weight folders are often
read-only or shared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from deepsound.errors import WeightsError
from deepsound.weights import trust
from deepsound.weights.digest import (  # noqa: F401  (re-exported for the callers of this module)
    cached_digest,
    file_digest,
    remember_digest,
)
from deepsound.weights.registry import WeightFile

Verify = Literal["none", "size", "checksum"]
VERIFY_MODES: tuple[str, ...] = ("none", "size", "checksum")


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
