"""Published weight files: registry, lookup, download and verification.

``resolve(name)`` is what model loaders call: it returns a local path to a
checked copy of the file, fetching it when that is allowed, and otherwise
fails with one line that says what is missing and where to put it.
"""

from __future__ import annotations

from deepsound.weights.checksum import VERIFY_MODES, Verify, file_digest, verify_file
from deepsound.weights.registry import REGISTRY, WeightFile, checksum_is_well_formed, get
from deepsound.weights.resolve import (
    default_cache_dir,
    download,
    locate,
    offline_from_env,
    packaged_copy,
    resolve,
)

__all__ = [
    "REGISTRY",
    "VERIFY_MODES",
    "Verify",
    "WeightFile",
    "checksum_is_well_formed",
    "default_cache_dir",
    "download",
    "file_digest",
    "get",
    "locate",
    "offline_from_env",
    "packaged_copy",
    "resolve",
    "verify_file",
]
