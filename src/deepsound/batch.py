"""Many clips, models loaded once.

Input is a folder of videos, a text file of paths (one a line) or a CSV of
``path[,prompt]``. Clips whose trace already exists are skipped, so an
interrupted batch resumes where it stopped; a bad clip is recorded with its
reason and the batch goes on. ``shard`` splits a list across workers or
machines (``K/N`` takes every N-th clip starting at K) without any
coordination service: each worker writes its own summary.
"""

from __future__ import annotations

import csv
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsound.config import RunOptions
from deepsound.errors import ConfigError, DeepSoundError, WeightsError
from deepsound.files import ensure_dir, write_json
from deepsound.media.kinds import VIDEO_SUFFIXES
from deepsound.output_paths import OutputPaths
from deepsound.pipeline import Pipeline
from deepsound.progress import Listener
from deepsound.residency import interleave, own_time

log = logging.getLogger(__name__)


@dataclass
class BatchItem:
    video: Path
    prompt: str | None = None


@dataclass
class ItemOutcome:
    video: str
    status: str  # "done" | "skipped" | "failed"
    reason: str | None = None
    seconds: float = 0.0
    mllm_calls: int = 0
    has_voice_over: bool | None = None
    fallback: str | None = None
    # a failure no other clip can escape (missing or damaged weights): the batch stops here
    stops_batch: bool = False


@dataclass
class BatchSummary:
    items: list[ItemOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)

    def to_dict(self) -> dict[str, Any]:
        done = [i for i in self.items if i.status == "done"]
        return {
            "done": self.count("done"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "seconds": round(self.seconds, 3),
            "mllm_calls_total": sum(i.mllm_calls for i in done),
            "mllm_calls_per_clip": round(sum(i.mllm_calls for i in done) / len(done), 3) if done else None,
            "items": [{k: v for k, v in vars(i).items() if k != "stops_batch"} for i in self.items],
        }


def read_inputs(source: Path) -> list[BatchItem]:
    """Folder, text list or CSV; relative paths in a list are relative to the list's folder."""
    source = Path(source)
    if not source.exists():
        raise ConfigError(f"{source}: batch input does not exist")
    if source.is_dir():
        items = [
            BatchItem(p)
            for p in sorted(source.iterdir())
            if p.suffix.lower() in VIDEO_SUFFIXES and not _is_our_output(p)
        ]
        if not items:
            raise ConfigError(f"{source}: folder holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
        return items
    base = source.parent
    text = source.read_text(encoding="utf-8", errors="replace")
    items: list[BatchItem] = []
    if source.suffix.lower() == ".csv":
        for line_no, row in csv_rows(source, text):
            if not row or not row[0].strip() or row[0].strip().startswith("#"):
                continue
            if row[0].strip().lower() in ("path", "video", "id") and not items:
                continue  # header
            if len(row) > 2 and any(cell.strip() for cell in row[2:]):
                raise ConfigError(
                    f"{source}, line {line_no}: {len(row)} columns, expected path[,prompt] "
                    f'(put a prompt that holds commas in double quotes: "rain, thunder")'
                )
            prompt = row[1].strip() if len(row) > 1 and row[1].strip() else None
            items.append(BatchItem(_relative_to(base, row[0].strip()), prompt))
    else:
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                items.append(BatchItem(_relative_to(base, line)))
    if not items:
        raise ConfigError(f"{source}: batch list is empty")
    return items


def csv_rows(source: Path, text: str) -> list[tuple[int, list[str]]]:
    """Rows with their line numbers; a quote left open is an error naming its line.

    ``csv`` would otherwise carry an unclosed quote over the following lines and merge
    them into one bogus path, losing clips silently. A row of a batch list never spans lines.
    """
    rows: list[tuple[int, list[str]]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        try:
            parsed = list(csv.reader([line], strict=True))
        except csv.Error as exc:
            raise ConfigError(f"{source}, line {line_no}: {_csv_problem(line, exc)}") from None
        rows.append((line_no, parsed[0] if parsed else []))
    return rows


def _csv_problem(line: str, exc: csv.Error) -> str:
    if line.count('"') % 2:
        return "a double quote is opened and not closed on this line"
    return f"not valid CSV ({exc})"


def _is_our_output(path: Path) -> bool:
    """A video this project wrote (its trace beside it names it): not an input of a rerun."""
    import json

    trace = path.with_name(f"{path.stem}.trace.json")
    if not trace.is_file():
        return False
    try:
        final = json.loads(trace.read_text(encoding="utf-8")).get("final") or {}
    except (OSError, ValueError):
        return False
    return final.get("video") is not None and Path(final["video"]).name == path.name


def _relative_to(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def parse_shard(value: str | None) -> tuple[int, int]:
    if not value:
        return 0, 1
    try:
        index, count = (int(v) for v in value.split("/"))
    except ValueError:
        raise ConfigError(f"shard must look like K/N (e.g. 0/4), got {value!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard {value!r}: need 0 <= K < N")
    return index, count


def is_finished(output_dir: Path, video: Path) -> bool:
    return OutputPaths.for_clip(output_dir, video).trace.exists()


def run_batch(
    pipeline: Pipeline,
    items: list[BatchItem],
    output_dir: Path,
    options: RunOptions,
    *,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    on_item: Callable[[ItemOutcome], None] | None = None,
) -> BatchSummary:
    """Run every item; never stop on a bad clip. Writes ``batch_summary[.K-of-N].json``."""
    ensure_dir(output_dir)
    index, count = shard
    mine = items[index::count]
    check_unique_names(mine)
    summary = BatchSummary()
    start = time.perf_counter()
    name = "batch_summary.json" if count == 1 else f"batch_summary.{index}-of-{count}.json"
    path = output_dir / name
    if pipeline.residency.groups_batches:  # one large model at a time: stage by stage over the clips
        outcomes = run_grouped(pipeline, mine, output_dir, options, overwrite)
    else:
        outcomes = (run_one(pipeline, item, output_dir, options, overwrite) for item in mine)
    for outcome in outcomes:
        summary.items.append(outcome)
        summary.seconds = time.perf_counter() - start
        # rewritten (atomically) after every clip: a killed batch loses at most the clip in flight
        write_json(path, {**summary.to_dict(), "complete": False, "total": len(mine)})
        if on_item is not None:
            on_item(outcome)
        if outcome.stops_batch:  # every other clip would fail the same way (and re-check gigabytes)
            raise WeightsError(
                f"batch stopped at {Path(outcome.video).name} ({len(summary.items)} of {len(mine)}), as every clip "
                f"needs these weights: {outcome.reason}"
            )
    summary.seconds = time.perf_counter() - start
    write_json(path, {**summary.to_dict(), "complete": True, "total": len(mine)})
    return summary


def run_one(
    pipeline: Pipeline,
    item: BatchItem,
    output_dir: Path,
    options: RunOptions,
    overwrite: bool = False,
    progress: Listener | None = None,
) -> ItemOutcome:
    """One clip as a batch runs it (also each Ray worker): skip if finished, never raise."""
    video = str(item.video)
    if not overwrite and is_finished(output_dir, item.video):
        return _finished_outcome(output_dir, item.video)
    start = time.perf_counter()
    try:
        result = pipeline.run(item.video, output_dir, _clip_options(item, options), progress=progress)
    except Exception as exc:  # a bug or a model failure on one clip must not end the batch
        return _outcome(video, None, exc, time.perf_counter() - start)
    return _outcome(video, result, None, time.perf_counter() - start)


def run_grouped(
    pipeline: Pipeline, items: list[BatchItem], output_dir: Path, options: RunOptions, overwrite: bool = False
) -> Iterator[ItemOutcome]:
    """Every clip through one stage before the next (``--residency one``): no model comes back per clip.

    A clip's seconds are its own stages' time, not the time it waited while the others went on
    (:func:`~deepsound.residency.own_time`); the batch's wall time is the summary's.
    """
    runs, spent = {}, {}
    for index, item in enumerate(items):
        if not overwrite and is_finished(output_dir, item.video):
            yield _finished_outcome(output_dir, item.video)
        else:
            spent[index] = [0.0]
            stages = pipeline.stages(item.video, output_dir, _clip_options(item, options))
            runs[index] = own_time(stages, spent[index])
    for index, result, error in interleave(runs, pipeline.residency.prepare):
        yield _outcome(str(items[index].video), result, error, spent[index][0])


def _clip_options(item: BatchItem, options: RunOptions) -> RunOptions:
    return options.replace(prompt=item.prompt) if item.prompt is not None else options


def _outcome(video: str, result: Any, error: BaseException | None, seconds: float) -> ItemOutcome:
    if isinstance(error, WeightsError):
        return ItemOutcome(video, "failed", str(error), seconds, stops_batch=True)
    if isinstance(error, DeepSoundError):
        return ItemOutcome(video, "failed", str(error), seconds)
    if error is not None:
        log.debug("clip %s failed:\n%s", video, "".join(traceback.format_exception(error)))
        return ItemOutcome(video, "failed", f"{type(error).__name__}: {error}", seconds)
    return ItemOutcome(
        video,
        "done",
        seconds=round(seconds, 3),
        mllm_calls=result.trace.mllm_call_count,
        has_voice_over=result.has_voice_over,
        fallback=result.fallback,
    )


def _finished_outcome(output_dir: Path, video: Path) -> ItemOutcome:
    """A clip done by an earlier run: its results come from its trace, so a rerun's summary keeps them."""
    from deepsound.trace import TraceReader

    outcome = ItemOutcome(str(video), "skipped", "outputs exist")
    try:
        trace = TraceReader.from_file(OutputPaths.for_clip(output_dir, video).trace)
    except (OSError, ValueError):
        return outcome  # an unreadable trace: still skipped, without results
    outcome.has_voice_over = trace.final.get("has_voice_over")
    outcome.fallback = trace.fallback
    outcome.seconds = trace.seconds
    outcome.mllm_calls = trace.mllm_calls
    return outcome


def check_unique_names(items: list[BatchItem]) -> None:
    """Outputs are named after the video's stem: two clips with one stem would overwrite each other."""
    seen: dict[str, Path] = {}
    for item in items:
        other = seen.setdefault(item.video.stem, item.video)
        if other != item.video:
            raise ConfigError(
                f"{item.video} and {other} share the name {item.video.stem!r}; outputs would collide"
            )
