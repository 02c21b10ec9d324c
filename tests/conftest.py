"""Shared fixtures: where the real clips live, and a switch for them.

The real clips sit in ``../shared/media`` beside a checkout; a user's clone has
none, so every test that reads them skips when the folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO_ROOT.parent / "shared" / "media"


@pytest.fixture(scope="session")
def media_dir() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"real clips not present at {SHARED_MEDIA}")
    return SHARED_MEDIA


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> None:
    """One intra-op thread: the test tensors are tiny, and on a busy 2-core machine OpenMP
    spin-waiting made small passes hundreds of times slower than single-threaded ones."""
    import torch

    torch.set_num_threads(1)
