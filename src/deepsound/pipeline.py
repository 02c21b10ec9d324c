"""The step loop of DeepSound-V1, in the order the plan gives.

Read top to bottom, :meth:`Pipeline.run` is the method section of the paper:
plan (step 0), generate (1), judge voice-over (2), remove it (3), check
silence (4) and fall back (rm / rep / neg). Everything model-specific lives
behind the protocols of :mod:`deepsound.interfaces`; this module only decides
what happens next and writes down why.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsound import media
from deepsound.audio import Audio
from deepsound.config import NEGATIVE_PROMPT_FALLBACK, PipelineConfig, RunOptions
from deepsound.errors import DeepSoundError, MediaError
from deepsound.files import ensure_dir
from deepsound.interfaces import GenerationRequest, Plan, Step
from deepsound.progress import Listener, listening
from deepsound.registry import Components
from deepsound.steps.generate import generate_windowed
from deepsound.trace import Trace

log = logging.getLogger(__name__)


@dataclass
class OutputPaths:
    """Where one clip's files go; the trace is written last and marks the clip as done."""

    folder: Path
    name: str

    def file(self, suffix: str) -> Path:
        return self.folder / f"{self.name}{suffix}"

    @property
    def audio(self) -> Path:
        return self.file(".wav")

    @property
    def video(self) -> Path:
        return self.file(".mp4")

    @property
    def trace(self) -> Path:
        return self.file(".trace.json")


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


class Pipeline:
    """Models loaded once, many clips run: the object behind the CLI, the API and workers."""

    def __init__(self, config: PipelineConfig | None = None, components: Components | None = None) -> None:
        self.config = config or PipelineConfig()
        self.components = components or Components(self.config)

    @classmethod
    def from_config(cls, config: PipelineConfig | None = None, **overrides: Any) -> Pipeline:
        """``Pipeline.from_config(variant="small_16k", judge="speech")`` or from a config object."""
        if config is None:
            config = PipelineConfig(**overrides)
        elif overrides:
            raise TypeError("pass either a PipelineConfig or keyword settings, not both")
        return cls(config)

    # ------------------------------------------------------------------ the method
    def run(
        self,
        video: Path | str,
        output_dir: Path | str = "outputs",
        options: RunOptions | None = None,
        progress: Listener | None = None,
    ) -> ClipResult:
        """Run the plan on ``video`` and write ``<name>.wav``, ``<name>.mp4`` and ``<name>.trace.json``.

        On failure every file this run wrote is removed again, so a re-run
        (or a batch that skips finished clips) never mistakes debris for results.
        ``progress`` hears each step's start and end and the long loops' fractions
        (:mod:`deepsound.progress`); the CLI, the web page and Ray workers all listen this way.
        """
        options = options or RunOptions()
        video = Path(video)
        paths = OutputPaths(ensure_dir(Path(output_dir)), video.stem)
        trace = Trace(video=str(video), options=vars(options).copy(), config=self.config.to_dict())
        written: list[Path] = []
        start = time.perf_counter()
        try:
            with listening(progress):
                result = self._run_steps(video, paths, options, trace, written)
        except BaseException as exc:
            # The caller reports the error (one line in the CLI, a row in a batch summary).
            log.debug("%s failed: %s", video, exc)
            for path in written:
                path.unlink(missing_ok=True)
            raise
        trace.seconds = round(time.perf_counter() - start, 3)
        # Model loads happen inside the first clip's steps; they are reported apart so that
        # step timings compare across the clips of a batch.
        trace.final["model_load_seconds"] = dict(self.components.load_seconds)
        trace.write(paths.trace)
        result.outputs["trace"] = paths.trace
        return result

    def _run_steps(
        self, video: Path, paths: OutputPaths, options: RunOptions, trace: Trace, written: list[Path]
    ) -> ClipResult:
        info = media.probe(video)
        if not info.has_video:
            raise MediaError(f"{video}: has no video stream")
        if options.duration is None:
            options = options.replace(duration=info.duration)
            trace.options["duration"] = info.duration

        def save(audio: Audio, suffix: str) -> Path:
            path = paths.file(suffix)
            media.write_audio(path, audio)
            written.append(path)
            return path

        plan = self._plan(video, trace)
        step1: Audio | None = None
        current: Audio | None = None
        result = ClipResult(video=video, audio=None, outputs={}, trace=trace)
        finished = False

        for step in plan.steps:
            if step is Step.GENERATE:
                with trace.step("step1_generate", self.components.generator.name) as rec:
                    step1 = self._generate(video, options, options.negative_prompt)
                    current = step1
                    rec.decision = "generated"
                    rec.evidence = {
                        "duration": round(step1.duration, 3),
                        "sample_rate": step1.sample_rate,
                        **self._stage_seconds(),
                    }
                    if options.keep_intermediates:
                        rec.outputs["audio"] = str(save(step1, ".step1.wav"))

            elif step is Step.DETECT_VOICE_OVER:
                assert current is not None, "the plan judges audio before generating it"
                judge = self.components.judge
                with trace.step("step2_judge_voice_over", judge.name) as rec:
                    verdict = judge.judge(video, current)
                    has_vo = verdict.has_voice_over
                    if has_vo is None:
                        has_vo = self.config.undecided_is_voice_over
                        trace.warnings.append(f"judge undecided; treated as voice-over={has_vo}")
                    rec.decision = {"has_voice_over": has_vo, "judge_said": verdict.has_voice_over}
                    rec.evidence = dict(verdict.evidence)
                    if verdict.cot_text:
                        rec.evidence["cot_text"] = verdict.cot_text
                    rec.mllm_calls = list(verdict.mllm_calls)
                result.has_voice_over = has_vo
                if not has_vo:
                    finished = True
                    break

            elif step is Step.REMOVE_VOICE_OVER:
                assert current is not None, "the plan removes voice before generating audio"
                separator = self.components.separator
                with trace.step("step3_remove_voice_over", separator.name) as rec:
                    separation = separator.separate(current)
                    current = separation.instrumental
                    rec.decision = "separated"
                    rec.evidence = dict(separation.evidence)
                    if options.keep_intermediates:
                        rec.outputs["instrumental"] = str(save(separation.instrumental, ".step3.wav"))
                        rec.outputs["vocals"] = str(save(separation.vocals, ".step3.vocals.wav"))
                if options.mode == "s3":
                    finished = True
                    break

            elif step is Step.CHECK_SILENCE:
                assert current is not None, "the plan checks silence before generating audio"
                detector = self.components.silence
                with trace.step("step4_check_silence", detector.name) as rec:
                    report = detector.detect(current, video)
                    rec.decision = {"is_silent": report.is_silent}
                    rec.evidence = {"silent_frame_ratio": report.silent_frame_ratio, **report.evidence}
                    rec.mllm_calls = list(report.mllm_calls)
                if report.is_silent:
                    current = self._fallback(video, options, step1, trace, result, save)
                finished = True
                break

        if not finished and current is None:
            raise DeepSoundError(
                f"{video}: the plan produced no audio (steps: {[s.name for s in plan.steps]})"
            )

        result.audio = current
        return self._write_final(video, paths, options, trace, result, written)

    # ------------------------------------------------------------------ the steps
    def _plan(self, video: Path, trace: Trace) -> Plan:
        planner = self.components.planner
        with trace.step("step0_plan", planner.name) as rec:
            plan = planner.plan(video)
            rec.decision = [s.name.lower() for s in plan.steps]
            rec.evidence = {"plan_text": plan.text, "source": plan.source}
            rec.mllm_calls = list(plan.mllm_calls)
        trace.warnings.extend(plan.warnings)
        return plan

    def _stage_seconds(self) -> dict[str, Any]:
        """The generator's own split of its time (decode, CLIP, sampling, …) when it keeps one."""
        timings = getattr(self.components.generator, "timings", None)
        if not timings:
            return {}
        return {"stage_seconds": {k: round(float(v), 4) for k, v in timings.items()}}

    def _generate(self, video: Path, options: RunOptions, negative_prompt: str) -> Audio:
        request = GenerationRequest(
            video=video,
            prompt=options.prompt,
            negative_prompt=negative_prompt,
            duration=options.duration,
            seed=options.seed,
            num_steps=options.num_steps,
            cfg_strength=options.cfg_strength,
        )
        generator = self.components.generator
        if options.window is not None and request.duration > options.window:
            return generate_windowed(generator, request, options.window, options.window_overlap)
        return generator.generate(request)

    def _fallback(self, video, options, step1, trace, result, save) -> Audio | None:  # noqa: ANN001
        """What the paper does when removing the voice left nothing: rm, rep or neg."""
        result.fallback = options.postprocess
        with trace.step(f"postprocess_{options.postprocess}") as rec:
            if options.postprocess == "rm":
                rec.decision = "audio removed"
                return None
            if options.postprocess == "rep":
                rec.decision = "kept step-1 audio"
                return step1
            # neg: regenerate with the same seed, steering away from voice. A user's own
            # negative prompt is kept beside the paper's "human voice".
            negative = NEGATIVE_PROMPT_FALLBACK
            if options.negative_prompt.strip():
                negative = f"{options.negative_prompt.strip()}, {NEGATIVE_PROMPT_FALLBACK}"
            audio = self._generate(video, options, negative)
            rec.decision = "regenerated"
            rec.evidence = {"negative_prompt": negative, "seed": options.seed}
            if options.keep_intermediates:
                rec.outputs["audio"] = str(save(audio, ".neg.wav"))
            return audio

    def _write_final(self, video, paths, options, trace, result, written) -> ClipResult:  # noqa: ANN001
        audio = result.audio
        if audio is not None:
            media.write_audio(paths.audio, audio)
            written.append(paths.audio)
            result.outputs["audio"] = paths.audio
        if options.write_video:
            media.mux_audio(video, audio, paths.video)
            written.append(paths.video)
            result.outputs["video"] = paths.video
        trace.final = {
            "audio": str(paths.audio) if audio is not None else None,
            "video": str(paths.video) if options.write_video else None,
            "has_voice_over": result.has_voice_over,
            "fallback": result.fallback,
            "duration": round(audio.duration, 3) if audio is not None else None,
            "sample_rate": audio.sample_rate if audio is not None else None,
        }
        return result
