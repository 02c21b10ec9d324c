"""Wall time per named stage of a generator, summed over a run.

The generators report where their time goes (text encoding, sampling, decoding …) in the
trace's evidence. On CUDA a kernel launch returns before the work is done, so when asked the
timer synchronizes the device at both ends; elsewhere it costs two clock reads.
"""

from __future__ import annotations

import time
from typing import Protocol

import torch


class Timed(Protocol):
    """What the timer reads from its owner."""

    timings: dict[str, float]
    sync_timings: bool
    device: torch.device


class StageTimer:
    """``with StageTimer(owner, "sampling"):`` adds the block's wall time to ``owner.timings``."""

    def __init__(self, owner: Timed, name: str) -> None:
        self.owner, self.name = owner, name

    def __enter__(self) -> None:
        self._sync()
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._sync()
        timings = self.owner.timings
        timings[self.name] = timings.get(self.name, 0.0) + time.perf_counter() - self.start

    def _sync(self) -> None:
        if self.owner.sync_timings and self.owner.device.type == "cuda":
            torch.cuda.synchronize(self.owner.device)
