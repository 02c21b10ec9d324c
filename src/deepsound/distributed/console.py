"""What ``deepsound batch --ray`` shows: one bar over all workers, one log line per clip and worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from deepsound.batch import BatchItem
from deepsound.config import RunOptions
from deepsound.distributed.actor import PipelineSource
from deepsound.distributed.cluster import RaySettings
from deepsound.distributed.scheduler import BatchEvent, RayBatch
from deepsound.distributed.summary import DistributedSummary


class ProgressDisplay:
    """Listens to :class:`BatchEvent` and keeps one rich bar: clips finished, failed, workers, ETA.

    Skipped clips count as finished from the start, so the time left is estimated from
    the clips actually run. The per-worker lines come from the scheduler's log.
    """

    def __init__(self, console: Console, total: int, disable: bool = False, label: str = "clips") -> None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/]"),
            TextColumn("{task.fields[workers]} workers"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.progress = Progress(*columns, console=console, disable=disable)
        self.task = self.progress.add_task(label, total=total, done=0, failed=0, workers=0)
        self.ready: set[str] = set()

    def __enter__(self) -> ProgressDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, event: BatchEvent) -> None:
        counts = event.counts
        if event.kind == "planned":  # skipped clips: finished, but not part of the rate
            self.progress.reset(self.task, total=counts["total"], completed=counts["skipped"])
        elif event.kind == "worker_ready" and event.worker:
            self.ready.add(event.worker)
        elif event.kind == "worker_lost" and event.worker:
            self.ready.discard(event.worker)
        finished = counts["done"] + counts["failed"] + counts["skipped"]
        self.progress.update(
            self.task,
            completed=finished,
            done=counts["done"],
            failed=counts["failed"],
            workers=len(self.ready),
        )


def batch_on_ray(
    pipeline: PipelineSource,
    items: list[BatchItem],
    output_dir: Path,
    options: RunOptions,
    *,
    address: str,
    workers: int | None,
    gpus_per_worker: float | None,
    overwrite: bool,
    shard: tuple[int, int],
    console: Console,
    quiet: bool,
    **settings: Any,
) -> DistributedSummary:
    """The ``batch --ray`` command's body, kept here so the CLI module only wires options."""
    ray_settings = RaySettings(address=address, workers=workers, gpus_per_worker=gpus_per_worker, **settings)
    total = len(items[shard[0] :: shard[1]])
    with ProgressDisplay(console, total, disable=quiet) as display, RayBatch(pipeline, ray_settings) as pool:
        summary = pool.run(items, output_dir, options, overwrite=overwrite, shard=shard, on_event=display)
    retried = [Path(i.video).name for i in summary.items if getattr(i, "retries", 0)]
    if retried and not quiet:
        console.print(f"handed on after a lost worker: {', '.join(retried)}", highlight=False, markup=False)
    return summary
