"""The paper's comparison in one run: Direct, Direct-neg, s3 and s4 with rm / rep / neg.

All settings but Direct-neg start from the same step-1 generation (same
video, prompt and seed), so the step loop runs once per video, in ``s4`` mode
with the ``neg`` fallback and every intermediate kept, and each setting's
soundtrack is read off that run's trace:

* **Direct**: the step-1 audio.
* **s3**: the step-3 instrumental where the judge heard voice-over, else step 1.
* **s4-rm / s4-rep / s4-neg**: as s3, but where step 4 found the instrumental
  silent: silence (rm), the step-1 audio (rep), or the regeneration with the
  negative prompt "human voice" (neg).
* **Direct-neg**: generation with that negative prompt for every video; where
  the s4 run already made it (its neg fallback, same request and seed) it is
  reused, otherwise generated with the step loop cut to step 1.

Each setting becomes a folder of ``<stem>.wav`` files, evaluated against the
same reference (whose features are extracted once and shared).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsound.errors import ConfigError, DeepSoundError
from deepsound.files import atomic_output, ensure_dir, write_json
from deepsound.interfaces import CANONICAL_PLAN_TEXT, Plan, Step
from deepsound.trace import TraceReader, TraceStep

log = logging.getLogger(__name__)

SETTINGS = ("direct", "direct-neg", "s3", "s4-rm", "s4-rep", "s4-neg")
LABELS = {
    "direct": "Direct",
    "direct-neg": "Direct-neg",
    "s3": "Step-by-step s3",
    "s4-rm": "Step-by-step s4 (rm)",
    "s4-rep": "Step-by-step s4 (rep)",
    "s4-neg": "Step-by-step s4 (neg)",
}


class GenerateOnlyPlanner:
    """Step 1 alone: what Direct-neg needs from the step loop."""

    name = "generate-only"

    def plan(self, video: Path) -> Plan:
        return Plan([Step.GENERATE], CANONICAL_PLAN_TEXT, source=self.name)


@dataclass
class ClipRun:
    """What one s4 run left: the files of each step and the two decisions."""

    stem: str
    step1: Path | None = None
    step3: Path | None = None
    neg: Path | None = None
    has_voice_over: bool | None = None
    is_silent: bool | None = None
    duration: float | None = None


@dataclass
class ExperimentResult:
    rows: dict[str, dict[str, float | None]] = field(default_factory=dict)
    evaluations: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)


def read_run(trace_path: Path) -> ClipRun:
    trace = TraceReader.from_file(trace_path)
    run = ClipRun(trace_path.name[: -len(".trace.json")])
    run.duration = trace.duration
    run.step1 = trace.output(Step.GENERATE, "audio")
    run.has_voice_over = trace.has_voice_over
    run.step3 = trace.output(Step.REMOVE_VOICE_OVER, "instrumental")
    run.is_silent = trace.is_silent
    run.neg = trace.output(TraceStep.FALLBACK_NEG, "audio")
    return run


def audio_for(setting: str, run: ClipRun) -> Path | None:
    """The file that is ``setting``'s soundtrack for this clip; None means silence (rm)."""
    if setting == "direct" or not run.has_voice_over:
        return run.step1
    if setting == "s3" or not run.is_silent:
        return run.step3
    return {"s4-rm": None, "s4-rep": run.step1, "s4-neg": run.neg}[setting]


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


def run_experiment(
    videos: list[Path],
    reference: Path,
    out_dir: Path,
    pipeline: Any,
    options: Any,
    *,
    settings: tuple[str, ...] = SETTINGS,
    eval_settings: Any = None,
    metrics: tuple[str, ...] | None = None,
    extractors: dict | None = None,
    progress: Any = None,
    on_clip: Any = None,
    videos_dir: Path | None = None,
    prompts: dict[str, str] | None = None,
) -> ExperimentResult:
    """Generate once per video, derive every setting, evaluate each; ``out_dir`` keeps everything."""
    from deepsound.evaluation.extractors import METRICS
    from deepsound.evaluation.report import write_report
    from deepsound.evaluation.runner import evaluate
    from deepsound.pipeline import Pipeline
    from deepsound.registry import Components

    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; choose from: {', '.join(SETTINGS)}")
    out_dir = ensure_dir(Path(out_dir))
    result = ExperimentResult()
    runs_dir, neg_dir = out_dir / "runs", out_dir / "runs-direct-neg"
    stepwise = any(s not in ("direct-neg",) for s in settings)
    s4 = options.replace(mode="s4", postprocess="neg", keep_intermediates=True, write_video=False)
    generate_only: list[Pipeline] = []  # built on first need: a resumed run may need no generator

    def direct_neg(video: Path) -> None:
        if not generate_only:
            overrides = {"generator": pipeline.components.generator, "planner": GenerateOnlyPlanner()}
            generate_only.append(Pipeline(pipeline.config, Components(pipeline.config, overrides)))
        prompt = (prompts or {}).get(video.stem)
        generate_only[0].run(
            video, neg_dir, neg_options if prompt is None else neg_options.replace(prompt=prompt)
        )

    from deepsound.config import NEGATIVE_PROMPT_FALLBACK

    negative = NEGATIVE_PROMPT_FALLBACK
    if options.negative_prompt.strip():
        negative = f"{options.negative_prompt.strip()}, {NEGATIVE_PROMPT_FALLBACK}"
    neg_options = options.replace(negative_prompt=negative, keep_intermediates=True, write_video=False)

    clips: dict[str, ClipRun] = {}
    for video in videos:
        stem = video.stem
        prompt = (prompts or {}).get(stem)
        try:
            if stepwise:
                trace = runs_dir / f"{stem}.trace.json"
                if not trace.exists():
                    pipeline.run(video, runs_dir, s4 if prompt is None else s4.replace(prompt=prompt))
                clips[stem] = read_run(trace)
            else:
                clips[stem] = ClipRun(stem)
            if "direct-neg" in settings and clips[stem].neg is None:
                neg_trace = neg_dir / f"{stem}.trace.json"
                if not neg_trace.exists():
                    direct_neg(video)
                clips[stem].neg = read_run(neg_trace).step1
        except DeepSoundError as exc:
            log.warning("%s: %s", video.name, exc)
            result.failures.append({"video": str(video), "reason": str(exc)})
        if on_clip is not None:
            on_clip(video)
        if stem in clips:
            c = clips[stem]
            result.decisions[stem] = {"has_voice_over": c.has_voice_over, "is_silent": c.is_silent}

    if not clips:
        raise DeepSoundError("no video could be generated; nothing to evaluate")
    if videos_dir is None:  # a list of videos: link them into one folder, paired by stem
        videos_dir = ensure_dir(out_dir / "videos")
        for video in videos:
            link = videos_dir / video.name
            if not link.exists():
                link.symlink_to(video.resolve())
    for setting in settings:
        folder = ensure_dir(out_dir / "settings" / setting)
        for old in folder.glob("*.wav"):
            old.unlink()
        for stem, run in clips.items():
            src = run.neg if setting == "direct-neg" else audio_for(setting, run)
            if src is None and setting != "s4-rm":
                continue
            _place(src, folder / f"{stem}.wav", run.duration)
        evaluation = evaluate(
            folder, reference, videos=videos_dir,
            out_dir=out_dir / "eval" / setting, settings=eval_settings,
            metrics=metrics or METRICS, reference_cache=out_dir / "cache" / "reference",
            extractors=extractors, progress=progress or (lambda label, total: lambda: None),
        )  # fmt: skip
        write_report(evaluation, out_dir / "eval" / setting, name=LABELS[setting])
        from deepsound.evaluation.report import scores_of

        result.rows[LABELS[setting]] = scores_of(evaluation)
        result.evaluations[setting] = evaluation
    return result


def write_summary(result: ExperimentResult, out_dir: Path) -> str:
    """``experiment.md`` (the paper-style table with changes relative to Direct) and ``experiment.json``."""
    from deepsound.evaluation.report import markdown_table

    baseline = LABELS["direct"] if LABELS["direct"] in result.rows else None
    table = markdown_table(result.rows, baseline=baseline)
    note = "IB-score ×100; in brackets: relative improvement over Direct (positive is better).\n"
    with atomic_output(Path(out_dir) / "experiment.md") as tmp:
        tmp.write_text(f"# DeepSound-V1 settings\n\n{table}\n{note}", encoding="utf-8")
    write_json(
        Path(out_dir) / "experiment.json",
        {"rows": result.rows, "failures": result.failures, "decisions": result.decisions},
    )
    return table
