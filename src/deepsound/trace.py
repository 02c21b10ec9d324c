"""The per-clip record: what each step decided, why, how long it took.

A researcher comparing judges, or a video editor wondering why a clip came
out silent, reads ``<name>.trace.json``. Every step appends one
:class:`StepRecord`; the trace is written atomically at the end (and on
failure, with the error), so a trace on disk always describes a whole run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsound import progress
from deepsound.files import write_json

log = logging.getLogger("deepsound")


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy / torch scalars and small arrays
        return value.tolist()
    return value


def _short(decision: Any) -> str:
    text = str(_jsonable(decision))
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class StepRecord:
    """One step as it happened."""

    step: str
    decision: Any = None
    evidence: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    component: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    mllm_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Trace:
    """Everything about one clip's run."""

    video: str
    options: dict[str, Any]
    config: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    seconds: float = 0.0

    @contextlib.contextmanager
    def step(self, name: str, component: str | None = None) -> Iterator[StepRecord]:
        """Time a step, log it (the CLI's progress lines) and append its record, also when it raises."""
        record = StepRecord(step=name, component=component)
        clip = Path(self.video).name
        log.info("%s: %s%s …", clip, name, f" ({component})" if component else "")
        progress.emit(progress.ProgressEvent(clip, name, "start", 0.0, component=component))
        start = time.perf_counter()
        try:
            with progress.in_step(clip, name):
                yield record
        finally:
            record.seconds = round(time.perf_counter() - start, 4)
            self.steps.append(record)
            log.info("%s: %s → %s in %.1f s", clip, name, _short(record.decision), record.seconds)
            progress.emit(
                progress.ProgressEvent(clip, name, "end", 1.0, component=component, record=_jsonable(record))
            )

    @property
    def mllm_call_count(self) -> int:
        return sum(len(s.mllm_calls) for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        data = _jsonable(self)
        data["mllm_call_count"] = self.mllm_call_count
        return data

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())
