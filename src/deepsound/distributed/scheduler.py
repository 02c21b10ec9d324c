"""Hand clips to Ray workers, one at a time each, so that no clip is lost or done twice.

The queue of clips lives in the driver, not in a Ray queue actor: the driver must
know which clip each worker holds anyway, to hand it on when that worker is lost,
and a queue actor would be one more process whose loss loses the batch. Each idle
worker takes the next clip as soon as it finishes its last, which is the same load
balancing a shared queue gives (slow clips do not hold up fast workers).

Exactly once: a clip is with at most one live worker at a time, and is given to
another only after Ray reports its worker dead (the actor is then killed for
good, so a worker that was merely unreachable cannot come back and finish it
too). A clip whose worker died after writing its trace counts as done, because
the trace is written last. A clip that fails for its own reasons (bad media, a
model error) comes back as an outcome, not as a lost worker, and is recorded
once. Temporary files a killed worker left are swept when no clip is running, and its
output lock is released at once. Long because this exactly-once bookkeeping reads best in one place.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsound.batch import BatchItem, check_unique_names, is_finished
from deepsound.config import RunOptions
from deepsound.distributed.actor import ClipWorker, PipelineSource
from deepsound.distributed.cluster import RaySettings, WorkerShape, connect, import_ray, plan_workers
from deepsound.distributed.summary import (
    PENDING,
    DistributedOutcome,
    DistributedSummary,
    SummaryWriter,
    WorkerStats,
    outcome_from_trace,
    release_lock_of_lost,
    remove_debris,
)
from deepsound.files import ensure_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchEvent:
    """What the scheduler tells listeners (the CLI's bar and log, notebooks, tests).

    ``kind``: ``planned`` (first: finished clips counted as skipped), ``worker_ready`` (``info`` has host, pid, GPU ids), ``worker_lost``,
    ``started`` (a clip handed to ``worker``), ``finished`` (``outcome`` set), ``requeued``.
    """

    kind: str
    counts: dict[str, int]
    worker: str | None = None
    clip: str | None = None
    outcome: DistributedOutcome | None = None
    info: dict[str, Any] | None = None
    message: str = ""


EventListener = Callable[[BatchEvent], None]


@dataclass
class _Worker:
    stats: WorkerStats
    actor: Any
    ready: bool = False
    alive: bool = True
    ref: Any = None  # the one call in flight: info() until ready, then run()
    index: int | None = None  # the clip it holds
    started: float = 0.0

    @property
    def name(self) -> str:
        return self.stats.name


@dataclass
class _Run:
    items: list[BatchItem]
    output_dir: Path
    options: RunOptions
    overwrite: bool
    summary: DistributedSummary
    writer: SummaryWriter
    on_event: EventListener | None
    queue: deque[int] = field(default_factory=deque)


class RayBatch:
    """A pool of Ray workers that runs batches; workers (and their models) outlive one run.

    ``pipeline`` is a :class:`~deepsound.pipeline.Pipeline` with nothing built yet, or a
    zero-argument callable that makes one; each worker makes its own in its own process::

        with RayBatch(Pipeline.from_config(generator={"variant": "large_44k_v2"}), workers=8) as pool:
            summary = pool.run(read_inputs(Path("clips.csv")), Path("out"), RunOptions())
    """

    def __init__(self, pipeline: PipelineSource, settings: RaySettings | None = None, **kwargs: Any) -> None:
        if settings is not None and kwargs:
            raise TypeError("pass either RaySettings or keyword settings, not both")
        self.source = pipeline
        self.settings = settings or RaySettings(**kwargs)
        self.shape: WorkerShape | None = None
        self._workers: list[_Worker] = []
        self._connected = False
        self._serial = 0
        self._replacements = 0

    def __enter__(self) -> RayBatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ workers
    def _start_worker(self) -> _Worker:
        ray = import_ray()
        assert self.shape is not None
        self._serial += 1
        name = f"w{self._serial}"
        remote = ray.remote(ClipWorker).options(
            num_cpus=self.shape.num_cpus, num_gpus=self.shape.num_gpus, max_restarts=0, max_task_retries=0
        )
        threads = max(1, int(self.shape.num_cpus))
        actor = remote.remote(name, self.source, threads, self.shape.uses_gpu)
        worker = _Worker(WorkerStats(name), actor)
        worker.ref = actor.info.remote()
        self._workers.append(worker)
        return worker

    def _ensure_workers(self, clips: int) -> None:
        if self._workers:
            return
        self._connected = connect(self.settings) or self._connected
        ray = import_ray()
        self.shape = plan_workers(self.settings, ray.cluster_resources(), clips)
        log.info("starting %s on Ray", self.shape.describe())
        for _ in range(self.shape.count):
            self._start_worker()

    def _max_replacements(self) -> int:
        if self.settings.max_replacements is not None:
            return self.settings.max_replacements
        return 2 * (self.shape.count if self.shape else 1)

    def _lose(self, worker: _Worker, reason: str, state: str = "lost") -> None:
        """Kill the actor for good (an unreachable one must not come back) and maybe replace it."""
        ray = import_ray()
        worker.alive, worker.ready, worker.ref = False, False, None
        worker.stats.state, worker.stats.note = state, reason
        try:
            ray.kill(worker.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        if state == "lost" and self._replacements < self._max_replacements():
            self._replacements += 1
            new = self._start_worker()
            log.info("starting %s to replace %s", new.name, worker.name)

    def close(self) -> None:
        """Stop the workers; disconnect from Ray if this pool connected."""
        if not self._workers and not self._connected:
            return
        ray = import_ray()
        for worker in self._workers:
            if worker.alive:
                worker.alive = False
                worker.stats.state = "stopped"
                try:
                    ray.kill(worker.actor, no_restart=True)
                except Exception:  # noqa: BLE001
                    pass
        self._workers = []
        if self._connected:
            ray.shutdown()
            self._connected = False

    # ------------------------------------------------------------------ a batch
    def run(
        self,
        items: Sequence[BatchItem],
        output_dir: Path | str,
        options: RunOptions | None = None,
        *,
        overwrite: bool = False,
        shard: tuple[int, int] = (0, 1),
        on_event: EventListener | None = None,
    ) -> DistributedSummary:
        """Run every clip once; finished ones (trace present) are skipped unless ``overwrite``."""
        output_dir = ensure_dir(Path(output_dir)).resolve()
        index, count = shard
        mine = list(items)[index::count]
        check_unique_names(mine)
        name = "batch_summary.json" if count == 1 else f"batch_summary.{index}-of-{count}.json"
        summary = DistributedSummary()
        run = _Run(
            mine, output_dir, options or RunOptions(), overwrite, summary,
            SummaryWriter(output_dir / name, self.settings.summary_interval), on_event,
        )  # fmt: skip
        stems = {item.video.stem for item in mine}
        remove_debris(output_dir, stems)  # left by a batch that was killed outright
        for i, item in enumerate(mine):
            if not overwrite and is_finished(output_dir, item.video):
                summary.items.append(DistributedOutcome(str(item.video), "skipped", "outputs exist"))
            else:
                summary.items.append(DistributedOutcome(str(item.video), PENDING))
                run.queue.append(i)
        self._emit(run, "planned", message=f"{len(run.queue)} to run, {len(mine) - len(run.queue)} finished")
        start = time.perf_counter()
        try:
            if run.queue:
                self._ensure_workers(len(run.queue))
                summary.shape = self.shape.describe() if self.shape else ""
                self._loop(run)
        finally:
            summary.seconds = time.perf_counter() - start
            summary.workers = {w.name: w.stats for w in self._workers}
            if not any(w.index is not None for w in self._workers if w.alive):
                remove_debris(output_dir, stems)
            run.writer.update(summary, force=True)
        return summary

    def _loop(self, run: _Run) -> None:
        ray = import_ray()
        waiting_since = time.monotonic()
        warned = False
        while True:
            self._dispatch(run)
            busy = [w for w in self._workers if w.alive and w.index is not None]
            if not run.queue and not busy:
                return
            refs = [w.ref for w in self._workers if w.alive and w.ref is not None]
            if not refs:
                self._give_up(run, "no worker left (all were lost or failed to start)")
                return
            done, _ = ray.wait(refs, num_returns=1, timeout=1.0)
            for ref in done:
                worker = next(w for w in self._workers if w.ref is ref)
                if worker.ready:
                    self._clip_returned(run, worker)
                else:
                    self._info_returned(run, worker)
            if any(w.ready for w in self._workers):
                waiting_since = time.monotonic()
            elif not warned and time.monotonic() - waiting_since > 60:
                warned = True
                shape = self.shape.describe() if self.shape else "workers"
                log.warning("no worker has started in 60 s; has the cluster room for %s?", shape)
            run.writer.update(run.summary)

    def _dispatch(self, run: _Run) -> None:
        for worker in self._workers:
            if not run.queue:
                return
            if worker.alive and worker.ready and worker.index is None:
                index = run.queue.popleft()
                item = run.items[index]
                sent = BatchItem(item.video.resolve(), item.prompt)  # workers may have another cwd
                worker.index, worker.started = index, time.perf_counter()
                worker.ref = worker.actor.run.remote(sent, str(run.output_dir), run.options, run.overwrite)
                self._emit(run, "started", worker=worker.name, clip=str(item.video))

    def _info_returned(self, run: _Run, worker: _Worker) -> None:
        ray = import_ray()
        try:
            info = ray.get(worker.ref)
        except ray.exceptions.RayError as exc:  # the process died starting (node lost, import failed)
            reason = _first_line(exc)
            log.warning("%s lost while starting: %s", worker.name, reason)
            self._lose(worker, reason)
            self._emit(run, "worker_lost", worker=worker.name, message=reason)
            return
        stats = worker.stats
        if info.get("error"):  # the pipeline could not be made: a replacement would fail alike
            log.warning("%s could not start: %s", worker.name, info["error"])
            self._lose(worker, info["error"], state="failed_setup")
            self._emit(run, "worker_lost", worker=worker.name, message=info["error"])
            return
        stats.host, stats.pid, stats.gpu_ids = info["host"], info["pid"], info["gpu_ids"]
        stats.setup_seconds, stats.state = info["setup_seconds"], "ready"
        worker.ready, worker.ref = True, None
        gpus = f", GPU {','.join(stats.gpu_ids)}" if stats.gpu_ids else ""
        log.info("%s ready on %s (pid %s%s)", worker.name, stats.host, stats.pid, gpus)
        self._emit(run, "worker_ready", worker=worker.name, info=info)

    def _clip_returned(self, run: _Run, worker: _Worker) -> None:
        ray = import_ray()
        index, item = worker.index, run.items[worker.index]
        slot: DistributedOutcome = run.summary.items[index]
        seconds = time.perf_counter() - worker.started
        try:
            reply = ray.get(worker.ref)
        except ray.exceptions.RayTaskError as exc:  # a bug in the worker code, not a lost worker
            reply = {"outcome": None, "error": _first_line(exc)}
        except ray.exceptions.RayError as exc:  # the worker (or its node) is gone
            worker.index = None
            self._clip_lost(run, worker, index, _first_line(exc))
            return
        worker.index, worker.ref = None, None
        stats = worker.stats
        stats.busy_seconds = round(stats.busy_seconds + seconds, 3)
        if reply.get("outcome") is None:
            outcome = DistributedOutcome(str(item.video), "failed", reply["error"], round(seconds, 3))
        else:
            outcome = DistributedOutcome.from_outcome(reply["outcome"])
            stats.built, stats.load_seconds = reply["built"], reply["load_seconds"]
        outcome.video, outcome.worker = str(item.video), worker.name
        outcome.retries, outcome.attempts = slot.retries, slot.attempts
        run.summary.items[index] = outcome
        stats.clips += outcome.status == "done"
        stats.failed += outcome.status == "failed"
        if outcome.status == "done" and not is_finished(run.output_dir, item.video):
            log.warning("%s on %s wrote %s where this machine cannot see it: the output folder must "
                        "be shared by all nodes", worker.name, stats.host, run.output_dir)  # fmt: skip
        if outcome.stops_batch:  # missing or damaged weights: every other clip would fail the same way
            self._give_up(run, f"batch stopped: {outcome.reason}")
        detail = f"in {outcome.seconds:.1f} s" if outcome.status == "done" else f"({outcome.reason})"
        log.info(
            "%s: %s %s %s · %d done here", worker.name, item.video.name, outcome.status, detail, stats.clips
        )
        self._emit(run, "finished", worker=worker.name, clip=str(item.video), outcome=outcome)

    def _clip_lost(self, run: _Run, worker: _Worker, index: int, reason: str) -> None:
        item = run.items[index]
        slot: DistributedOutcome = run.summary.items[index]
        where = f"{worker.name} ({worker.stats.host} pid {worker.stats.pid})"
        self._lose(worker, reason)
        self._emit(run, "worker_lost", worker=worker.name, clip=str(item.video), message=reason)
        attempts = [*slot.attempts, {"worker": where, "reason": reason}]
        if is_finished(run.output_dir, item.video):
            # Lost after writing the trace, which is written last: the clip is done.
            outcome = DistributedOutcome.from_outcome(
                outcome_from_trace(run.output_dir, item.video), worker=worker.name,
                retries=slot.retries, attempts=attempts,
            )  # fmt: skip
            outcome.video = str(item.video)
            run.summary.items[index] = outcome
            self._emit(run, "finished", worker=worker.name, clip=str(item.video), outcome=outcome)
            return
        release_lock_of_lost(run.output_dir, item.video, worker.stats)
        retries = slot.retries + 1
        if retries > self.settings.max_retries:
            reason = f"its worker was lost {retries} times while running it; last: {reason}"
            outcome = DistributedOutcome(
                str(item.video), "failed", reason, retries=slot.retries, attempts=attempts
            )
            run.summary.items[index] = outcome
            log.warning("%s: %s", item.video.name, reason)
            self._emit(run, "finished", worker=worker.name, clip=str(item.video), outcome=outcome)
            return
        run.summary.items[index] = DistributedOutcome(
            str(item.video), PENDING, retries=retries, attempts=attempts
        )
        run.queue.appendleft(index)  # next free worker takes it
        log.warning("%s lost while running %s (%s); handing it on (retry %d of %d)", where,
                    item.video.name, reason, retries, self.settings.max_retries)  # fmt: skip
        self._emit(run, "requeued", worker=worker.name, clip=str(item.video), message=reason)

    def _give_up(self, run: _Run, reason: str) -> None:
        log.error("%s; %d clips not run", reason, len(run.queue))
        while run.queue:
            index = run.queue.popleft()
            slot = run.summary.items[index]
            slot.status, slot.reason = "failed", reason
            self._emit(run, "finished", clip=slot.video, outcome=slot)

    def _emit(self, run: _Run, kind: str, **fields: Any) -> None:
        if run.on_event is None:
            return
        s = run.summary
        counts = {k: s.count(k) for k in ("done", "skipped", "failed", PENDING)}
        counts["total"] = len(s.items)
        try:
            run.on_event(BatchEvent(kind, counts, **fields))
        except Exception:  # noqa: BLE001 - a broken display must never break a batch
            log.debug("batch event listener failed", exc_info=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0]}"


def run_batch_ray(
    pipeline: PipelineSource,
    items: Sequence[BatchItem],
    output_dir: Path | str,
    options: RunOptions | None = None,
    *,
    overwrite: bool = False,
    shard: tuple[int, int] = (0, 1),
    on_event: EventListener | None = None,
    **settings: Any,
) -> DistributedSummary:
    """:func:`deepsound.batch.run_batch` on a Ray cluster: start workers, run, stop them."""
    with RayBatch(pipeline, **settings) as pool:
        return pool.run(items, output_dir, options, overwrite=overwrite, shard=shard, on_event=on_event)
