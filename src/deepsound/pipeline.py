"""The step loop of DeepSound-V1: a table of step handlers over one run state.

Read top to bottom, :meth:`Pipeline.run` is the method section of the paper: plan
(step 0), then each planned step's handler in the plan's order — generate (1), judge
voice-over (2), remove it (3), check silence (4) and fall back (rm / rep / neg). Each
handler asks its component (built by :mod:`deepsound.registry`), gets a typed result
from :mod:`deepsound.steps`, records decision and evidence in the trace, and says
whether the plan goes on. Mode ``s3`` is the plan cut after step 3, decided and
recorded at step 0. This module decides what happens next and writes down why; the
method's rules live in :mod:`deepsound.steps`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsound import media
from deepsound.audio import Audio
from deepsound.config import PipelineConfig, RunOptions
from deepsound.errors import DeepSoundError
from deepsound.files import OutputLock
from deepsound.files import output_dir as made_output_dir
from deepsound.input_check import check_input
from deepsound.interfaces import Generation, GenerationRequest, Plan, Step
from deepsound.output_paths import OutputPaths
from deepsound.progress import Listener, listening
from deepsound.registry import Components
from deepsound.residency import Residency, conditions_ahead, own_time
from deepsound.steps.generate import fallback_negative_prompt, generate, request_for
from deepsound.steps.stem_speech import hear_ahead
from deepsound.steps.voice_over import decide_voice_over
from deepsound.trace import Trace, TraceStep
from deepsound.weights.overrides import used_overrides
from deepsound.weights.trust import used_on_trust

log = logging.getLogger(__name__)


@dataclass
class ClipResult:
    """What a run produced: the final audio (None when the `rm` fallback removed it) and files."""

    video: Path
    audio: Audio | None
    outputs: dict[str, Path]
    trace: Trace
    has_voice_over: bool | None = None
    fallback: str | None = None
    notes: list[str] = field(default_factory=list)


class Next(enum.Enum):
    """What a step handler tells the loop."""

    CONTINUE = "continue"
    STOP = "stop"  # the method is done with this clip (no voice-over, or the plan's end)


@dataclass
class RunState:
    """Everything one clip's run carries from step to step."""

    video: Path
    options: RunOptions
    paths: OutputPaths
    trace: Trace
    written: list[Path]
    result: ClipResult
    step1: Generation | None = None
    audio: Audio | None = None  # the audio as it stands after the last step
    silent: bool = False  # step 4 found silence: the fallback runs
    ahead: dict[str, float] = field(default_factory=dict)  # seconds of conditions encoded ahead
    heard_ahead: float | None = None  # seconds the speech detector spent at the "hear" stage

    def current_audio(self, step: str) -> Audio:
        if self.audio is None:  # the plan parser puts generation first; a custom planner might not
            raise DeepSoundError(f"{self.video}: the plan reaches {step} before any audio was generated")
        return self.audio

    def save(self, audio: Audio, suffix: str) -> Path | None:
        """Keep an intermediate file (unless the options say not to); it is removed if the run fails."""
        if not self.options.keep_intermediates:
            return None
        path = self.paths.file(suffix)
        media.write_audio(path, audio)
        self.written.append(path)
        return path


_STAGE_OF = {
    Step.GENERATE: "generate",
    Step.DETECT_VOICE_OVER: "judge",
    Step.REMOVE_VOICE_OVER: "separate",
    Step.CHECK_SILENCE: "silence",
}


class Pipeline:
    """Models loaded once, many clips run: the object behind the CLI, the API, the web page and workers."""

    def __init__(self, config: PipelineConfig | None = None, components: Components | None = None) -> None:
        self.config = config or PipelineConfig()
        self.components = components or Components(self.config)
        self.residency = Residency(self.components, self.config.residency)
        self.handlers: dict[Step, Callable[[RunState], Next]] = {
            Step.GENERATE: self._generate_step,
            Step.DETECT_VOICE_OVER: self._voice_over_step,
            Step.REMOVE_VOICE_OVER: self._remove_voice_step,
            Step.CHECK_SILENCE: self._silence_step,
        }

    @classmethod
    def from_config(
        cls, config: PipelineConfig | None = None, *, preset: str = "default", **settings: Any
    ) -> Pipeline:
        """From a config object, or from a preset and settings shaped like the TOML file:
        ``Pipeline.from_config(preset="paper", generator={"variant": "small_16k"}, judge="speech")``."""
        if config is None:
            from deepsound.settings import load_settings

            config = load_settings(preset, overrides={"pipeline": settings}).pipeline
        elif settings or preset != "default":
            raise TypeError("pass either a PipelineConfig or a preset and settings, not both")
        return cls(config)

    # ------------------------------------------------------------------ the method
    def run(
        self,
        video: Path | str,
        output_dir: Path | str = "outputs",
        options: RunOptions | None = None,
        progress: Listener | None = None,
    ) -> ClipResult:
        """Run the plan on ``video`` and write ``<name>.wav``, ``<name>.mp4`` and ``<name>.trace.json``."""
        stages = self.stages(video, output_dir, options, progress)
        while True:
            try:
                stage = next(stages)
            except StopIteration as done:
                return done.value
            self.residency.prepare(stage)

    def stages(
        self,
        video: Path | str,
        output_dir: Path | str = "outputs",
        options: RunOptions | None = None,
        progress: Listener | None = None,
    ) -> Generator[str, None, ClipResult]:
        """:meth:`run`, paused before each stage (its name from :data:`deepsound.residency.STAGES`).

        The pause lets a caller bring in the stage's model first, and lets a batch take many clips
        through one stage before the next (:func:`deepsound.residency.interleave`).

        On failure every file this run wrote is removed again, so a re-run (or a batch
        that skips finished clips) never mistakes debris for results. ``progress`` hears
        each step's start and end and the long loops' fractions (:mod:`deepsound.progress`);
        the CLI, the web page and Ray workers all listen this way.
        """
        with made_output_dir(Path(output_dir)) as folder:  # a failed run leaves no empty folder behind
            # driven inside the block, so a failure at any stage still removes the folders
            return (yield from self._run(Path(video), folder, options or RunOptions(), progress))

    def _run(
        self, video: Path, output_dir: Path, options: RunOptions, progress: Listener | None
    ) -> ClipResult:
        paths = OutputPaths.for_clip(output_dir, video)
        trace = Trace(video=str(video), options=options.to_dict(), config=self.config.to_dict())
        state = RunState(
            video, options, paths, trace, [], ClipResult(video=video, audio=None, outputs={}, trace=trace)
        )
        spent = [0.0]  # this clip's own time: not the pauses where a batch runs the other clips
        # One writer per output name: a second run into the same folder fails with one line,
        # and this run's cleanup can only ever remove files this run created.
        with OutputLock(paths.folder, paths.name):
            try:
                with listening(progress):
                    yield from own_time(self._run_steps(state), spent)
            except BaseException as exc:
                # The caller reports the error (one line in the CLI, a row in a batch summary).
                log.debug("%s failed: %s", video, exc)
                for path in state.written:
                    path.unlink(missing_ok=True)
                raise
            trace.seconds = round(spent[0], 3)
            # Model loads happen inside the first clip's steps; they are reported apart so that
            # step timings compare across the clips of a batch.
            trace.final["model_load_seconds"] = dict(self.components.load_seconds)
            if overrides := used_overrides():
                trace.final["weights_overrides"] = overrides
            if on_trust := used_on_trust():  # files without a published checksum: the record they matched
                trace.final["weights_trust_on_first_use"] = on_trust
            trace.write(paths.trace)
        state.result.outputs["trace"] = paths.trace
        return state.result

    def _run_steps(self, state: RunState) -> Generator[str, None, None]:
        # 1. Check the input before any model loads: a video (or a still image) long enough.
        self._check_input(state)
        # 2. Step 0: the plan, cut after step 3 in mode s3.
        yield "plan"
        plan = self._plan(state)
        # 3. The planned steps, in order, until one says the method is done; then the fallback.
        for step in plan.steps:
            if step is Step.GENERATE and self.residency.groups_batches:  # one encoder at a time
                state.ahead = yield from conditions_ahead(
                    lambda: self.components.generator, self._ahead(state)
                )
            if step is Step.DETECT_VOICE_OVER and self.residency.hears_before_judging:
                yield "hear"  # the separating speech detector first, the MLLM after it (residency)
                state.heard_ahead = hear_ahead(
                    self.components.separator, self.components.speech, state.current_audio("step 2")
                )
            yield _STAGE_OF[step]
            if self.handlers[step](state) is Next.STOP:
                break
        if state.silent:
            if state.options.postprocess == "neg":
                yield "neg"
            self._fallback(state)
        yield "write"
        # 4. The final audio and video (no audio only where the rm fallback removed it).
        if state.audio is None and state.result.fallback != "rm":
            raise DeepSoundError(
                f"{state.video}: the plan produced no audio (steps: {[s.name for s in plan.steps]})"
            )
        state.result.audio = state.audio
        self._write_final(state)

    def _check_input(self, state: RunState) -> None:
        facts = check_input(state.video, state.options, self.config)
        if facts.options.duration != state.options.duration:
            state.trace.options["duration"] = facts.options.duration
        state.options = facts.options
        state.trace.warnings.extend(facts.warnings)

    # ------------------------------------------------------------------ the steps
    def _plan(self, state: RunState) -> Plan:
        planner = self.components.planner
        with state.trace.step(TraceStep.PLAN, planner.name) as rec:
            plan = planner.plan(state.video)
            if state.options.mode == "s3" and Step.CHECK_SILENCE in plan.steps:
                plan.steps = [s for s in plan.steps if s is not Step.CHECK_SILENCE]
                rec.evidence["cut"] = "mode s3: the plan ends after step 3 (no silence check)"
            rec.decision = [s.name.lower() for s in plan.steps]
            rec.evidence.update({"plan_text": plan.text, "source": plan.source})
            rec.mllm_calls = list(plan.mllm_calls)
        state.trace.warnings.extend(plan.warnings)
        return plan

    def _generate(self, state: RunState, negative_prompt: str) -> Generation:
        request = request_for(state.video, state.options, negative_prompt)
        return generate(
            self.components.generator, request, state.options.window, state.options.window_overlap
        )

    def _ahead(self, state: RunState) -> list[GenerationRequest]:
        """The clip's conditions to encode ahead (with ``neg``'s prompt); none for windows (other stretches)."""
        o = state.options
        if o.window is not None and (o.duration or 0.0) > o.window:
            return []
        negatives = [o.negative_prompt] + (
            [fallback_negative_prompt(o.negative_prompt)] if o.postprocess == "neg" else []
        )
        return [request_for(state.video, o, negative) for negative in negatives]

    def _generate_step(self, state: RunState) -> Next:
        with state.trace.step(Step.GENERATE, self.components.generator.name) as rec:
            made = self._generate(state, state.options.negative_prompt)
            state.step1, state.audio = made, made.audio
            rec.decision = "generated"
            rec.evidence = {"duration": round(made.audio.duration, 3), "sample_rate": made.audio.sample_rate}
            rec.evidence.update(made.evidence)
            if state.ahead:  # computed at the condition stages, counted in this step's time
                rec.evidence["conditions_ahead_seconds"] = state.ahead
            if saved := state.save(made.audio, ".step1.wav"):
                rec.outputs["audio"] = str(saved)
        rec.seconds = round(rec.seconds + sum(state.ahead.values()), 4)
        return Next.CONTINUE

    def _voice_over_step(self, state: RunState) -> Next:
        judge = self.components.judge
        audio = state.current_audio("step 2")
        with state.trace.step(Step.DETECT_VOICE_OVER, judge.name) as rec:
            decision = decide_voice_over(
                judge, state.video, audio, undecided_is_voice_over=self.config.undecided_is_voice_over
            )
            verdict = decision.verdict
            if decision.undecided:
                state.trace.warnings.append(
                    f"judge undecided; treated as voice-over={decision.has_voice_over}"
                )
            rec.decision = {"has_voice_over": decision.has_voice_over, "judge_said": verdict.has_voice_over}
            rec.evidence = dict(verdict.evidence)
            if verdict.cot_text:
                rec.evidence["cot_text"] = verdict.cot_text
            rec.mllm_calls = list(verdict.mllm_calls)
            if state.heard_ahead is not None:  # heard at the "hear" stage, counted in this step's time
                rec.evidence["heard_ahead_seconds"] = state.heard_ahead
        rec.seconds = round(rec.seconds + (state.heard_ahead or 0.0), 4)
        state.result.has_voice_over = decision.has_voice_over
        return Next.CONTINUE if decision.has_voice_over else Next.STOP

    def _remove_voice_step(self, state: RunState) -> Next:
        separator = self.components.separator
        audio = state.current_audio("step 3")
        with state.trace.step(Step.REMOVE_VOICE_OVER, separator.name) as rec:
            separation = separator.separate(audio)
            state.audio = separation.instrumental
            rec.decision = "separated"
            rec.evidence = dict(separation.evidence)
            if saved := state.save(separation.instrumental, ".step3.wav"):
                rec.outputs["instrumental"] = str(saved)
            if saved := state.save(separation.vocals, ".step3.vocals.wav"):
                rec.outputs["vocals"] = str(saved)
        return Next.CONTINUE

    def _silence_step(self, state: RunState) -> Next:
        detector = self.components.silence
        audio = state.current_audio("step 4")
        with state.trace.step(Step.CHECK_SILENCE, detector.name) as rec:
            report = detector.detect(audio, state.video)
            rec.decision = {"is_silent": report.is_silent}
            rec.evidence = {"silent_frame_ratio": report.silent_frame_ratio, **report.evidence}
            rec.mllm_calls = list(report.mllm_calls)
        state.silent = report.is_silent
        return Next.STOP

    def _fallback(self, state: RunState) -> None:
        """What the paper does when removing the voice left nothing: rm, rep or neg."""
        choice = state.options.postprocess
        state.result.fallback = choice
        with state.trace.step(TraceStep.fallback(choice)) as rec:
            if choice == "rm":
                rec.decision = "audio removed"
                state.audio = None
            elif choice == "rep":
                rec.decision = "kept step-1 audio"
                state.audio = state.step1.audio if state.step1 is not None else None
            else:  # neg: regenerate with the same seed, steering away from voice
                negative = fallback_negative_prompt(state.options.negative_prompt)
                made = self._generate(state, negative)
                state.audio = made.audio
                rec.decision = "regenerated"
                rec.evidence = {"negative_prompt": negative, "seed": state.options.seed, **made.evidence}
                if saved := state.save(made.audio, ".neg.wav"):
                    rec.outputs["audio"] = str(saved)

    def _write_final(self, state: RunState) -> None:
        audio, paths, result = state.audio, state.paths, state.result
        if audio is not None:
            media.write_audio(paths.audio, audio)
            state.written.append(paths.audio)
            result.outputs["audio"] = paths.audio
        if state.options.write_video:
            media.mux_audio(state.video, audio, paths.video)
            state.written.append(paths.video)
            result.outputs["video"] = paths.video
        state.trace.final = {
            "audio": str(paths.audio) if audio is not None else None,
            "video": str(paths.video) if state.options.write_video else None,
            "has_voice_over": result.has_voice_over,
            "fallback": result.fallback,
            "duration": round(audio.duration, 3) if audio is not None else None,
            "sample_rate": audio.sample_rate if audio is not None else None,
        }
