"""Any list of independent items over Ray workers, each done exactly once: the pool under
``evaluate --ray`` (feature extraction), ``reference build --ray`` (judge and remove voice)
and ``experiment --ray`` (both, after the clips were generated with :class:`RayBatch`).

:class:`~deepsound.distributed.scheduler.RayBatch` is tied to its unit (a clip through the
pipeline, its trace as the mark of a finished clip, ``batch_summary.json``). The pool here
keeps the same rules over any :class:`Job`: the queue lives in the driver; a worker holds one
item at a time; an item is handed to another worker only after Ray reports its worker dead
(the actor is then killed for good, so it cannot come back and finish the item too); an
item whose mark of completion exists when its worker is lost counts as done, because a job
writes that mark last. One model set per worker: the job's ``setup`` runs once in each
worker process before its first item.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from deepsound.distributed.cluster import RaySettings, WorkerShape, connect, import_ray, plan_workers
from deepsound.distributed.scheduler import BatchEvent, EventListener

log = logging.getLogger(__name__)


class Job(Protocol):
    """One kind of work. Sent (pickled) to every worker; ``setup`` and ``run`` run there,
    ``key`` and ``is_done`` in the driver (they read only the shared output folder)."""

    def key(self, item: Any) -> str: ...

    def is_done(self, item: Any) -> bool: ...

    def setup(self) -> None: ...

    def run(self, item: Any) -> dict[str, Any]:
        """Do ``item``, write its mark of completion last, return a small JSON-able record.
        Raise for a failure of the item itself (bad media); it is recorded, not retried."""
        ...


@dataclass
class TaskOutcome:
    key: str
    status: str  # done | skipped | failed | pending
    reason: str = ""
    worker: str | None = None
    seconds: float = 0.0
    retries: int = 0
    attempts: list[dict[str, str]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskSummary:
    outcomes: list[TaskOutcome] = field(default_factory=list)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    shape: str = ""
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


class TaskWorker:
    """The actor: ``setup`` once at start (models loaded), then ``run(item)`` per item."""

    def __init__(self, name: str, job: Job, threads: int, uses_gpu: bool) -> None:
        start = time.perf_counter()
        self.name, self.job, self.error = name, job, None
        if not uses_gpu:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""  # read when CUDA first initialises: not yet
        try:
            import torch

            torch.set_num_threads(max(1, threads))
            job.setup()
        except Exception as exc:  # reported to the driver, which drops this worker
            self.error = f"{type(exc).__name__}: {exc}"
            self.traceback = traceback.format_exc()
        self.setup_seconds = round(time.perf_counter() - start, 3)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "host": socket.gethostname(), "pid": os.getpid(),
                "setup_seconds": self.setup_seconds, "error": self.error}  # fmt: skip

    def run(self, item: Any) -> dict[str, Any]:
        from deepsound.errors import DeepSoundError

        try:
            return {"record": self.job.run(item)}
        except (DeepSoundError, OSError, ValueError, RuntimeError) as exc:  # the item's own failure
            return {"error": f"{type(exc).__name__}: {exc}"}


@dataclass
class _Slot:
    name: str
    actor: Any
    ref: Any = None
    ready: bool = False
    alive: bool = True
    index: int | None = None
    started: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    items: int = 0


class TaskPool:
    """A pool of :class:`TaskWorker` over one :class:`Job`; ``run`` may be called several times."""

    def __init__(self, job: Job, settings: RaySettings | None = None, **kwargs: Any) -> None:
        self.job = job
        self.settings = settings or RaySettings(**kwargs)
        self.shape: WorkerShape | None = None
        self._slots: list[_Slot] = []
        self._connected = False
        self._serial = 0
        self._replaced = 0

    def __enter__(self) -> TaskPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._slots and not self._connected:
            return
        ray = import_ray()
        for slot in self._slots:
            if slot.alive:
                slot.alive = False
                _kill(ray, slot.actor)
        self._slots = []
        if self._connected:
            ray.shutdown()
            self._connected = False

    def _start(self) -> _Slot:
        ray = import_ray()
        assert self.shape is not None
        self._serial += 1
        remote = ray.remote(TaskWorker).options(
            num_cpus=self.shape.num_cpus, num_gpus=self.shape.num_gpus, max_restarts=0, max_task_retries=0
        )
        name = f"w{self._serial}"
        actor = remote.remote(name, self.job, max(1, int(self.shape.num_cpus)), self.shape.uses_gpu)
        slot = _Slot(name, actor, ref=actor.info.remote())
        self._slots.append(slot)
        return slot

    def _lose(self, slot: _Slot, reason: str, replace: bool = True) -> None:
        slot.alive, slot.ready, slot.ref = False, False, None
        slot.info["state"], slot.info["note"] = ("lost" if replace else "failed_setup"), reason
        _kill(import_ray(), slot.actor)
        limit = self.settings.max_replacements
        limit = 2 * (self.shape.count if self.shape else 1) if limit is None else limit
        if replace and self._replaced < limit:
            self._replaced += 1
            log.info("starting %s to replace %s", self._start().name, slot.name)

    def run(self, items: Sequence[Any], on_event: EventListener | None = None) -> TaskSummary:
        """Every item once; items whose mark exists are skipped."""
        items = list(items)
        summary = TaskSummary()
        queue: deque[int] = deque()
        for i, item in enumerate(items):
            key = self.job.key(item)
            if self.job.is_done(item):
                summary.outcomes.append(TaskOutcome(key, "skipped", "done before"))
            else:
                summary.outcomes.append(TaskOutcome(key, "pending"))
                queue.append(i)
        emit = _emitter(summary, on_event)
        emit("planned", message=f"{len(queue)} to run")
        start = time.perf_counter()
        try:
            if queue:
                if not self._slots:
                    self._connected = connect(self.settings) or self._connected
                    self.shape = plan_workers(self.settings, import_ray().cluster_resources(), len(queue))
                    log.info("starting %s on Ray", self.shape.describe())
                    for _ in range(self.shape.count):
                        self._start()
                summary.shape = self.shape.describe() if self.shape else ""
                self._loop(items, queue, summary, emit)
        finally:
            summary.seconds = round(time.perf_counter() - start, 3)
            summary.workers = {s.name: {**s.info, "items": s.items, "alive": s.alive} for s in self._slots}
        return summary

    def _loop(self, items: list[Any], queue: deque[int], summary: TaskSummary, emit: Callable) -> None:
        ray = import_ray()
        while True:
            for slot in self._slots:  # hand out work
                if queue and slot.alive and slot.ready and slot.index is None:
                    slot.index, slot.started = queue.popleft(), time.perf_counter()
                    slot.ref = slot.actor.run.remote(items[slot.index])
                    emit("started", worker=slot.name, clip=summary.outcomes[slot.index].key)
            if not queue and not any(s.alive and s.index is not None for s in self._slots):
                return
            refs = [s.ref for s in self._slots if s.alive and s.ref is not None]
            if not refs:
                for index in queue:
                    summary.outcomes[index].status = "failed"
                    summary.outcomes[index].reason = "no worker left (all were lost or failed to start)"
                queue.clear()
                return
            done, _ = ray.wait(refs, num_returns=1, timeout=1.0)
            for ref in done:
                slot = next(s for s in self._slots if s.ref is ref)
                if slot.ready:
                    self._returned(slot, items, queue, summary, emit)
                else:
                    self._ready(slot, emit)

    def _ready(self, slot: _Slot, emit: Callable) -> None:
        ray = import_ray()
        try:
            info = ray.get(slot.ref)
        except ray.exceptions.RayError as exc:
            self._lose(slot, _first_line(exc))
            emit("worker_lost", worker=slot.name, message=_first_line(exc))
            return
        if info.get("error"):  # the models could not be made: a replacement would fail alike
            log.warning("%s could not start: %s", slot.name, info["error"])
            self._lose(slot, info["error"], replace=False)
            emit("worker_lost", worker=slot.name, message=info["error"])
            return
        slot.info, slot.ready, slot.ref = {**info, "state": "ready"}, True, None
        emit("worker_ready", worker=slot.name, info=info)

    def _returned(self, slot: _Slot, items: list, queue: deque[int], summary: TaskSummary, emit) -> None:  # noqa: ANN001
        ray = import_ray()
        index, seconds = slot.index, round(time.perf_counter() - slot.started, 3)
        assert index is not None
        outcome = summary.outcomes[index]
        try:
            reply = ray.get(slot.ref)
        except ray.exceptions.RayTaskError as exc:  # a bug in the job, not a lost worker
            reply = {"error": _first_line(exc)}
        except ray.exceptions.RayError as exc:  # the worker or its node is gone
            slot.index = None
            reason = _first_line(exc)
            outcome.attempts.append({"worker": f"{slot.name} (pid {slot.info.get('pid')})", "reason": reason})
            self._lose(slot, reason)
            emit("worker_lost", worker=slot.name, clip=outcome.key, message=reason)
            if self.job.is_done(items[index]):  # lost after writing its mark: done
                outcome.status, outcome.worker, outcome.seconds = "done", slot.name, seconds
                emit("finished", worker=slot.name, clip=outcome.key)
            elif outcome.retries >= self.settings.max_retries:
                outcome.status = "failed"
                outcome.reason = f"its worker was lost {outcome.retries + 1} times; last: {reason}"
                emit("finished", worker=slot.name, clip=outcome.key)
            else:
                outcome.retries += 1
                queue.appendleft(index)
                log.warning("%s lost while running %s (%s); handing it on", slot.name, outcome.key, reason)
                emit("requeued", worker=slot.name, clip=outcome.key, message=reason)
            return
        slot.index, slot.ref = None, None
        outcome.worker, outcome.seconds = slot.name, seconds
        if "error" in reply:
            outcome.status, outcome.reason = "failed", reply["error"]
        else:
            outcome.status, outcome.record = "done", reply.get("record") or {}
            slot.items += 1
        emit("finished", worker=slot.name, clip=outcome.key)


def _kill(ray: Any, actor: Any) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # noqa: BLE001 - already gone
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0]}"


def _emitter(summary: TaskSummary, on_event: EventListener | None) -> Callable[..., None]:
    def emit(kind: str, **fields: Any) -> None:
        if on_event is None:
            return
        counts = {k: summary.count(k) for k in ("done", "skipped", "failed", "pending")}
        counts["total"] = len(summary.outcomes)
        try:
            on_event(BatchEvent(kind, counts, **fields))
        except Exception:  # noqa: BLE001 - a broken display must never break the work
            log.debug("event listener failed", exc_info=True)

    return emit


def run_on_ray(job: Job, items: Sequence[Any], settings: RaySettings, *, label: str = "items",
               console: Any = None, quiet: bool = True) -> TaskSummary:  # fmt: skip
    """Start workers, run every item once under one progress bar, stop the workers."""
    from deepsound.distributed.console import ProgressDisplay

    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    with (
        ProgressDisplay(console, len(items), disable=quiet, label=label) as bar,
        TaskPool(job, settings) as pool,
    ):
        return pool.run(items, on_event=bar)
