"""The merged summary of a distributed batch, and the files a lost worker leaves behind.

One ``batch_summary.json`` lists every input exactly once, in input order, as the
one-machine batch does, plus what distribution adds: which worker ran a clip, how
often it was handed on because its worker was lost (and why), and per-worker
totals. It is rewritten atomically while the batch runs (clips not yet finished
read ``pending``), so a watcher or a crashed driver always leaves a whole file.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsound.batch import BatchSummary, ItemOutcome
from deepsound.files import write_json
from deepsound.output_paths import OutputPaths
from deepsound.trace import TraceReader

log = logging.getLogger(__name__)

PENDING = "pending"


@dataclass
class DistributedOutcome(ItemOutcome):
    """A batch outcome plus who ran it and how many times it had to be handed on."""

    worker: str | None = None
    retries: int = 0
    attempts: list[dict[str, str]] = field(default_factory=list)  # lost attempts: worker, reason

    @classmethod
    def from_outcome(cls, outcome: ItemOutcome, **extra: Any) -> DistributedOutcome:
        return cls(**{**vars(outcome), **extra})


@dataclass
class WorkerStats:
    name: str
    host: str | None = None
    pid: int | None = None
    gpu_ids: list[str] = field(default_factory=list)
    state: str = "starting"  # starting | ready | lost | failed_setup | stopped
    clips: int = 0
    failed: int = 0
    busy_seconds: float = 0.0
    setup_seconds: float | None = None
    built: list[str] = field(default_factory=list)  # components this worker loaded (lazily)
    load_seconds: dict[str, float] = field(default_factory=dict)
    note: str | None = None


@dataclass
class DistributedSummary(BatchSummary):
    """:class:`BatchSummary` with ``pending`` items allowed and the workers listed."""

    workers: dict[str, WorkerStats] = field(default_factory=dict)
    shape: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        items = data.pop("items")
        data["pending"] = self.count(PENDING)
        data["complete"] = data["pending"] == 0
        data["retried"] = [i.video for i in self.items if getattr(i, "retries", 0)]
        data["workers_shape"] = self.shape
        data["workers"] = [vars(w) for w in self.workers.values()]
        data["items"] = items
        return data


class SummaryWriter:
    """Rewrites the summary atomically, at most every ``interval`` seconds unless forced."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        self.interval = interval
        self._last = float("-inf")

    def update(self, summary: DistributedSummary, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            write_json(self.path, summary.to_dict())
            self._last = now


def outcome_from_trace(output_dir: Path, video: Path) -> ItemOutcome:
    """A clip whose worker died after writing its trace (the trace is written last) is done."""
    trace = TraceReader.from_file(OutputPaths.for_clip(output_dir, video).trace)
    return ItemOutcome(
        str(video),
        "done",
        seconds=trace.seconds,
        mllm_calls=trace.mllm_calls,
        has_voice_over=trace.final.get("has_voice_over"),
        fallback=trace.fallback,
    )


# deepsound.files.atomic_output names its temporary files ".<stem>.<8 random>.part<suffix>"
_PART = re.compile(r"^\.(?P<stem>.+)\.[a-z0-9_]{8}\.part(\.[^.]+)?$")


def remove_debris(output_dir: Path, stems: set[str]) -> list[Path]:
    """Delete temporary files a killed worker left for these clips.

    Only call this while none of these clips is running (before a batch starts and
    after its last clip): a live worker's temporary file looks the same.
    """
    removed: list[Path] = []
    if not output_dir.is_dir():
        return removed
    for path in output_dir.iterdir():
        match = _PART.match(path.name)
        if match is None or not path.is_file():
            continue
        name = match["stem"]
        if any(name == s or name.startswith(s + ".") for s in stems):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def release_lock_of_lost(output_dir: Path, video: Path, stats: WorkerStats) -> None:
    """Ray reported the worker dead (and it is killed for good): its output lock is released now,
    so the clip's next worker, on any node, can write it without waiting for the lock's lease."""
    from deepsound.output_lock import release_if_held_by
    from deepsound.output_paths import OutputPaths

    if stats.host is not None and stats.pid is not None:
        name = OutputPaths.for_clip(output_dir, video).name
        if release_if_held_by(output_dir, name, stats.host, stats.pid):
            log.info("released %s's output lock held by lost %s pid %d", video.name, stats.host, stats.pid)
