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
    """Tests run on 2-core CI machines; oversubscribing threads only slows them."""
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
