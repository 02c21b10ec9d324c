"""Progress of a run, told to whoever listens: the CLI's bars, the web page, Ray's aggregate.

The pipeline announces each step's start and end (with its record); long loops inside
components (the sampler's Euler steps, the separator's chunks) call :func:`report` with a
fraction. Listeners are bound per run through a context variable, so components need no
extra argument and two runs in two threads (two users of the web page) never hear each
other's progress.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    """``status``: ``start`` / ``end`` of a step (``record`` holds its trace record at the end),
    or ``progress`` inside a step (``fraction`` in [0, 1])."""

    clip: str
    step: str
    status: Literal["start", "progress", "end"]
    fraction: float | None = None
    message: str = ""
    component: str | None = None
    record: dict[str, Any] | None = None


Listener = Callable[[ProgressEvent], None]

_listener: contextvars.ContextVar[Listener | None] = contextvars.ContextVar(
    "deepsound_progress", default=None
)
_where: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("deepsound_step", default=("", ""))


@contextlib.contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Send this thread's (and its context's) progress events to ``listener`` for the block."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


@contextlib.contextmanager
def in_step(clip: str, step: str) -> Iterator[None]:
    token = _where.set((clip, step))
    try:
        yield
    finally:
        _where.reset(token)


def emit(event: ProgressEvent) -> None:
    listener = _listener.get()
    if listener is None:
        return
    try:
        listener(event)
    except Exception:  # noqa: BLE001 - a broken progress display must never break a run
        log.debug("progress listener failed", exc_info=True)


def report(done: int, total: int, message: str = "") -> None:
    """Called by long loops inside a step: ``done`` of ``total`` units finished."""
    if _listener.get() is None:
        return
    clip, step = _where.get()
    fraction = 1.0 if total <= 0 else min(1.0, max(0.0, done / total))
    emit(ProgressEvent(clip=clip, step=step, status="progress", fraction=fraction, message=message))
