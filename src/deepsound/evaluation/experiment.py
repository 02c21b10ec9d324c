"""The paper's comparison in one run: Direct, Direct-neg, s3 and s4 with rm / rep / neg, for
one or several V2A backends, each scored against the reference set the paper pairs it with.

All settings but Direct-neg start from the same step-1 generation (same video, prompt and
seed), so the step loop runs once per video and backend, in ``s4`` mode with the ``neg``
fallback and every intermediate kept, and each setting's soundtrack is read off its trace:

* **Direct**: the step-1 audio.
* **s3**: the step-3 instrumental where the judge heard voice-over, else step 1.
* **s4-rm / s4-rep / s4-neg**: as s3, but where step 4 found the instrumental silent:
  silence (rm), the step-1 audio (rep), or the regeneration with the negative prompt
  "human voice" (neg).
* **Direct-neg**: generation with that negative prompt for every video; where the s4 run
  already made it (its neg fallback, same request and seed) it is reused, otherwise it is
  generated with the step loop cut to step 1.

The table's rows and their reference sets (Ori-Set: the test audio as it is; VO-Free: the
same with its voice-over removed by the method, :mod:`deepsound.evaluation.reference_set`)
are in :mod:`deepsound.evaluation.paper_table`, which also computes every row over the
clips common to all rows and lists why each other clip was left out.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsound.errors import ConfigError, DeepSoundError
from deepsound.files import ensure_dir
from deepsound.interfaces import CANONICAL_PLAN_TEXT, Plan, Step
from deepsound.trace import TraceReader, TraceStep

log = logging.getLogger(__name__)

SETTINGS = ("direct", "direct-neg", "s3", "s4-rm", "s4-rep", "s4-neg")
# the steps whose seconds and MLLM calls a setting's soundtrack cost (from the traces)
_S3 = (TraceStep.PLAN, TraceStep.GENERATE, TraceStep.DETECT_VOICE_OVER, TraceStep.REMOVE_VOICE_OVER)
SETTING_STEPS: dict[str, tuple[str, ...]] = {
    "direct": (TraceStep.GENERATE.value,),
    "direct-neg": (TraceStep.GENERATE.value,),
    "s3": tuple(t.value for t in _S3),
}
for _name, _fallback in (("s4-rm", "rm"), ("s4-rep", "rep"), ("s4-neg", "neg")):
    SETTING_STEPS[_name] = (
        *SETTING_STEPS["s3"],
        TraceStep.CHECK_SILENCE.value,
        TraceStep.fallback(_fallback).value,
    )


@dataclass(frozen=True)
class Backend:
    """A V2A backend of the table: a registered generator name and, optionally, its variant."""

    name: str
    variant: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}:{self.variant}" if self.variant else self.name

    @property
    def slug(self) -> str:
        return self.label.replace(":", "-").replace("/", "_")


def parse_backends(values: list[str] | str | None, default: Backend) -> list[Backend]:
    """``mmaudio:small_44k,mmaudio:large_44k,foleycrafter`` → backends, checked against the registry."""
    from deepsound.registry import available

    items = [values] if isinstance(values, str) else list(values or [])
    parts = [p.strip() for item in items for p in item.split(",") if p.strip()]
    if not parts:
        return [default]
    out: list[Backend] = []
    for part in parts:
        name, _, variant = part.partition(":")
        if name not in available("generator"):
            raise ConfigError(f"unknown generator {name!r}; available: {', '.join(available('generator'))}")
        backend = Backend(name, variant or None)
        if backend in out:
            raise ConfigError(f"backend {backend.label} given twice")
        out.append(backend)
    return out


class GenerateOnlyPlanner:
    """Step 1 alone: what Direct-neg needs from the step loop."""

    name = "generate-only"

    def plan(self, video: Path) -> Plan:
        return Plan([Step.GENERATE], CANONICAL_PLAN_TEXT, source=self.name)


def generate_only_pipeline(config: Any, generator: Any = None) -> Any:
    """The pipeline of Direct-neg: the configured generator, the step loop cut to step 1."""
    from deepsound.pipeline import Pipeline
    from deepsound.registry import Components

    overrides: dict[str, Any] = {"planner": GenerateOnlyPlanner()}
    if generator is not None:
        overrides["generator"] = generator
    return Pipeline(config, Components(config, overrides))


def generate_only_from(pipeline: Any) -> Any:
    """Direct-neg's pipeline over the same generator object as ``pipeline`` (built once per process)."""
    return generate_only_pipeline(pipeline.config, pipeline.components.generator)


@dataclass
class ClipRun:
    """What one s4 run left: the files of each step, the two decisions, each step's cost."""

    stem: str
    step1: Path | None = None
    step3: Path | None = None
    neg: Path | None = None
    has_voice_over: bool | None = None
    is_silent: bool | None = None
    duration: float | None = None
    steps: dict[str, dict[str, float]] = field(default_factory=dict)  # step → seconds, mllm_calls


def read_run(trace_path: Path) -> ClipRun:
    trace = TraceReader.from_file(trace_path)
    run = ClipRun(trace_path.name[: -len(".trace.json")])
    run.duration = trace.duration
    run.step1 = trace.output(Step.GENERATE, "audio")
    run.has_voice_over = trace.has_voice_over
    run.step3 = trace.output(Step.REMOVE_VOICE_OVER, "instrumental")
    run.is_silent = trace.is_silent
    run.neg = trace.output(TraceStep.FALLBACK_NEG, "audio")
    for key, record in trace.records():
        if key is not None:
            run.steps[key.value] = {
                "seconds": float(record.get("seconds") or 0.0), "mllm_calls": len(record.get("mllm_calls") or []),
            }  # fmt: skip
    return run


def audio_for(setting: str, run: ClipRun) -> Path | None:
    """The file that is ``setting``'s soundtrack for this clip; None means silence (rm)."""
    if setting == "direct" or not run.has_voice_over:
        return run.step1
    if setting == "s3" or not run.is_silent:
        return run.step3
    return {"s4-rm": None, "s4-rep": run.step1, "s4-neg": run.neg}[setting]


def cost_of(setting: str, run: ClipRun, neg_run: ClipRun | None) -> dict[str, float]:
    """Seconds and MLLM calls that made ``setting``'s soundtrack of this clip."""
    steps = run.steps
    if setting == "direct-neg" and neg_run is not None:  # made by its own generate-only run
        steps = neg_run.steps
    elif setting == "direct-neg":  # reused: the s4 run's neg regeneration made it
        steps = {TraceStep.GENERATE.value: run.steps.get(TraceStep.FALLBACK_NEG.value, {})}
    used = [steps[s] for s in SETTING_STEPS[setting] if s in steps]
    return {"seconds": sum(u.get("seconds", 0.0) for u in used),
            "mllm_calls": sum(u.get("mllm_calls", 0) for u in used)}  # fmt: skip


@dataclass
class Generated:
    """One backend's clips: the s4 runs, the Direct-neg runs, and what failed with why."""

    runs: dict[str, ClipRun] = field(default_factory=dict)
    neg_runs: dict[str, ClipRun] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # stem → reason


def _items(videos: list[Path], prompts: dict[str, str] | None) -> list[Any]:
    from deepsound.batch import BatchItem

    return [BatchItem(v, (prompts or {}).get(v.stem)) for v in videos]


def generate_backend(
    pipeline: Any,
    videos: list[Path],
    folder: Path,
    options: Any,
    *,
    settings: tuple[str, ...],
    prompts: dict[str, str] | None = None,
    ray: Any = None,
    on_clip: Callable[[Path], None] | None = None,
    console: Any = None,
    quiet: bool = True,
) -> Generated:
    """Run the s4 loop (and Direct-neg where needed) for every video; resumable, per-clip failures."""
    from deepsound.batch import run_batch
    from deepsound.config import NEGATIVE_PROMPT_FALLBACK

    runs_dir, neg_dir = folder / "runs", folder / "runs-direct-neg"
    out = Generated()
    s4 = options.replace(mode="s4", postprocess="neg", keep_intermediates=True, write_video=False)
    negative = NEGATIVE_PROMPT_FALLBACK
    if options.negative_prompt.strip():
        negative = f"{options.negative_prompt.strip()}, {NEGATIVE_PROMPT_FALLBACK}"
    neg_options = options.replace(negative_prompt=negative, keep_intermediates=True, write_video=False)
    items = _items(videos, prompts)

    def batch(source: Any, chosen: list[Any], where: Path, opts: Any, label: str) -> dict[str, str]:
        if not chosen:
            return {}
        if ray is not None:  # one bar over all workers, as `batch --ray` shows
            from rich.console import Console

            from deepsound.distributed import RayBatch
            from deepsound.distributed.console import ProgressDisplay

            display = ProgressDisplay(
                console or Console(stderr=True), len(chosen), disable=quiet, label=label
            )
            with display, RayBatch(source, ray) as pool:
                summary = pool.run(chosen, where, opts, on_event=display)
        else:
            notify = on_clip if label == "generate" else None
            summary = run_batch(
                source, chosen, where, opts, on_item=lambda o: notify and notify(Path(o.video))
            )
        return {Path(i.video).stem: i.reason for i in summary.items if i.status == "failed"}

    stepwise = any(s != "direct-neg" for s in settings)
    if stepwise:
        out.failures.update(batch(pipeline, items, runs_dir, s4, "generate"))
        for item in items:
            trace = runs_dir / f"{item.video.stem}.trace.json"
            if item.video.stem not in out.failures and trace.exists():
                out.runs[item.video.stem] = read_run(trace)
    else:
        out.runs = {i.video.stem: ClipRun(i.video.stem) for i in items}
    if "direct-neg" in settings:
        todo = [i for i in items if i.video.stem in out.runs and out.runs[i.video.stem].neg is None]
        # made where it runs: a Ray worker builds it from its own copy of the pipeline
        source = functools.partial(generate_only_from, pipeline)
        if ray is None:
            source = source()
        neg_failures = batch(source, todo, neg_dir, neg_options, "direct-neg")
        for item in todo:
            trace = neg_dir / f"{item.video.stem}.trace.json"
            if item.video.stem not in neg_failures and trace.exists():
                out.neg_runs[item.video.stem] = read_run(trace)
        out.failures.update({s: f"direct-neg: {r}" for s, r in neg_failures.items()})
    return out


def _place(src: Path | None, dst: Path, duration: float | None) -> None:
    from deepsound import media
    from deepsound.audio import Audio

    if src is None:  # rm: what a viewer hears is silence
        media.write_audio(dst, Audio.silence(float(duration or 0.0), 16000))
        return
    try:
        dst.unlink(missing_ok=True)
        dst.hardlink_to(src)
    except OSError:
        shutil.copyfile(src, dst)


def place_settings(gen: Generated, folder: Path, settings: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Each setting's folder of ``<stem>.wav``; returns, per setting, the clips it lacks and why."""
    missing: dict[str, dict[str, str]] = {}
    for setting in settings:
        target = ensure_dir(folder / setting)
        for old in target.glob("*.wav"):
            old.unlink()
        lacks = missing.setdefault(setting, {})
        for stem, run in gen.runs.items():
            if setting == "direct-neg":
                src = run.neg or (gen.neg_runs[stem].step1 if stem in gen.neg_runs else None)
                if src is None:
                    lacks[stem] = gen.failures.get(stem, "no Direct-neg generation")
                    continue
            else:
                src = audio_for(setting, run)
                if src is None and setting != "s4-rm":
                    lacks[stem] = f"{setting}: the trace names no audio for this clip"
                    continue
            if src is not None and not src.exists():
                lacks[stem] = f"{setting}: {src.name} is missing"
                continue
            _place(src, target / f"{stem}.wav", run.duration)
    return missing


def link_videos(videos: list[Path], folder: Path) -> Path:
    """A list of videos linked into one folder, paired by stem (what the video metrics read)."""
    folder = ensure_dir(folder)
    for video in videos:
        link = folder / video.name
        if not link.exists():
            link.symlink_to(video.resolve())
    return folder


def check_settings(chosen: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [s for s in chosen if s not in SETTINGS]
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; choose from: {', '.join(SETTINGS)}")
    if not chosen:
        raise DeepSoundError("no setting chosen")
    return chosen
