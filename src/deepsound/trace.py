"""The per-clip record: what each step decided, why, how long it took — written and read here.

A researcher comparing judges, or a video editor wondering why a clip came
out silent, reads ``<name>.trace.json``. Every step appends one
:class:`StepRecord`, keyed by :class:`TraceStep` (the paper's :class:`Step`
plus the plan and the three fallbacks; its value is the record's name in the
file); the trace is written atomically at the end (and on failure, with the
error), so a trace on disk always describes a whole run.

:class:`TraceReader` is the one reader: the web page, ``deepsound experiment``,
a batch rerun and the Ray summary all take a run's decisions and files from it,
never by spelling step names themselves.
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
from deepsound.interfaces import MllmCall, Step

log = logging.getLogger("deepsound")


class TraceStep(enum.Enum):
    """What a step record is about; the value is the record's name in ``trace.json``."""

    PLAN = "step0_plan"
    GENERATE = "step1_generate"
    DETECT_VOICE_OVER = "step2_judge_voice_over"
    REMOVE_VOICE_OVER = "step3_remove_voice_over"
    CHECK_SILENCE = "step4_check_silence"
    FALLBACK_RM = "postprocess_rm"
    FALLBACK_REP = "postprocess_rep"
    FALLBACK_NEG = "postprocess_neg"

    @classmethod
    def of(cls, step: Step) -> TraceStep:
        """The record of one of the paper's steps."""
        return cls[step.name]

    @classmethod
    def fallback(cls, choice: str) -> TraceStep:
        """The record of the ``rm`` / ``rep`` / ``neg`` fallback."""
        return cls(f"postprocess_{choice}")

    @classmethod
    def named(cls, name: str) -> TraceStep | None:
        """The key of a record name read from a file (None for a name this version does not know)."""
        try:
            return cls(name)
        except ValueError:
            return None


StepKey = TraceStep | Step


def _key(step: StepKey) -> TraceStep:
    return TraceStep.of(step) if isinstance(step, Step) else step


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

    step: str  # a TraceStep's value
    decision: Any = None
    evidence: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    component: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    mllm_calls: list[MllmCall] = field(default_factory=list)

    @property
    def key(self) -> TraceStep | None:
        return TraceStep.named(self.step)


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
    def step(self, key: StepKey, component: str | None = None) -> Iterator[StepRecord]:
        """Time a step, log it (the CLI's progress lines) and append its record, also when it raises."""
        name = _key(key).value
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


class TraceReader:
    """A run's trace as the rest of the system reads it: decisions, files and counts by step.

    Built from the file (:meth:`from_file`) or from the in-memory :class:`Trace`
    (:meth:`of`); a step the run never reached reads as absent (None).
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self._records: dict[TraceStep, dict[str, Any]] = {}
        for record in data.get("steps") or []:
            key = TraceStep.named(str(record.get("step")))
            if key is not None:
                self._records[key] = record

    @classmethod
    def from_file(cls, path: Path) -> TraceReader:
        import json

        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def of(cls, trace: Trace) -> TraceReader:
        return cls(trace.to_dict())

    def record(self, step: StepKey) -> dict[str, Any] | None:
        return self._records.get(_key(step))

    def records(self) -> list[tuple[TraceStep | None, dict[str, Any]]]:
        """Every record in the order the steps ran (a record of an unknown name has key None)."""
        return [(TraceStep.named(str(r.get("step"))), r) for r in self.data.get("steps") or []]

    def output(self, step: StepKey, kind: str) -> Path | None:
        """A file a step wrote (``audio``, ``instrumental``, ``vocals``), None when it wrote none."""
        record = self.record(step) or {}
        path = (record.get("outputs") or {}).get(kind)
        return Path(path) if path else None

    def _decision(self, step: StepKey, key: str) -> bool | None:
        decision = (self.record(step) or {}).get("decision")
        if not isinstance(decision, dict) or decision.get(key) is None:
            return None
        return bool(decision[key])

    @property
    def has_voice_over(self) -> bool | None:
        """Step 2's decision (after the undecided rule), None when step 2 did not run."""
        return self._decision(Step.DETECT_VOICE_OVER, "has_voice_over")

    @property
    def is_silent(self) -> bool | None:
        return self._decision(Step.CHECK_SILENCE, "is_silent")

    @property
    def final(self) -> dict[str, Any]:
        return self.data.get("final") or {}

    @property
    def fallback(self) -> str | None:
        return self.final.get("fallback")

    @property
    def duration(self) -> float | None:
        """The duration the run was asked for (the whole video's when it was asked for all of it)."""
        return (self.data.get("options") or {}).get("duration")

    @property
    def seconds(self) -> float:
        return float(self.data.get("seconds") or 0.0)

    @property
    def mllm_calls(self) -> int:
        return int(self.data.get("mllm_call_count") or 0)
