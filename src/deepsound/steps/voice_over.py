"""Step 2 judges: does the generated audio hold a voice-over?

Three ways to answer, chosen with ``--judge``:

``speech``
    Silero VAD alone: voice-over when any speech is heard. Costs milliseconds,
    never loads the MLLM, but cannot tell on-screen dialogue from narration.
``mllm``
    Always asks the audio-visual LLM the paper's question (as the paper does).
``cascade`` (default)
    The speech detector first. No speech heard means no voice-over, and the
    MLLM is not asked: without a voice there is nothing for it to judge, and
    most generated tracks hold no voice. Only when speech is heard is the MLLM
    asked whether it is a voice-over; when its answer cannot be read, the
    speech detector's answer (voice heard -> voice-over) stands.

The MLLM may be given as a zero-argument factory: it is then loaded on first
use, so a batch whose clips hold no speech never loads the 7B model.

What the pipeline does with a verdict is decided here too (:func:`decide_voice_over`):
a judge that cannot decide is treated as ``undecided_is_voice_over`` says, and that is
written down. The chain of thought is read by :mod:`deepsound.steps.cot`.

This is the one place the voice-over rules live: when speech counts as heard
(:func:`speech_heard`), when heard speech is a voice-over (:func:`voice_over_from_speech`:
the dataset's labels and the evaluation's rate use it), what the reference pipeline's own
parser decides from an answer (:func:`reference_voice_over`), and that a soundtrack-less
video holds none (:func:`judge_soundtrack`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepsound.audio import Audio
from deepsound.errors import ConfigError
from deepsound.interfaces import Judge, Mllm, MllmAnswer, SpeechDetector, SpeechReport, VoiceOverVerdict
from deepsound.steps.prompts import VOICE_OVER_QUESTION, VOICE_OVER_SYSTEM_PROMPT

JUDGE_NAMES = ("cascade", "mllm", "speech")


class LazyMllm:
    """An MLLM built on first use from a factory, then shared (one load for many clips)."""

    def __init__(self, source: Mllm | Callable[[], Mllm]) -> None:
        self._source = source
        self._model: Any = None if callable(source) and not hasattr(source, "ask") else source

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> Mllm:
        if self._model is None:
            self._model = self._source()
        return self._model


def speech_heard(
    has_speech: bool, speech_seconds: float, speech_ratio: float, *, min_seconds: float = 0.0,
    min_ratio: float = 0.0,
) -> bool:  # fmt: skip
    """Speech counts as heard when the detector found some, at least ``min_seconds`` and ``min_ratio``
    of it (both 0 by default: any speech counts, as the ``speech`` judge decides)."""
    return has_speech and speech_seconds >= min_seconds and speech_ratio >= min_ratio


def voice_over_from_speech(generated_speaks: bool, original_speaks: bool | None) -> bool:
    """Heard speech is a voice-over unless the original soundtrack speaks over the same stretch too
    (then it is the scene's own, on-screen speech); with no original to compare, any voice counts."""
    return generated_speaks and not original_speaks


def reference_voice_over(text: str, mode: str) -> dict[str, Any]:
    """What DeepSound-V1's own step 2 decides from a VideoLLaMA2 answer (its exact rule), with the
    rule's name: mode ``qa`` — the whole answer is ``A``; mode ``cot`` — the character after the
    last ``<CONCLUSION>`` tag and its newline is ``A``."""
    if mode == "qa":
        return {"reference_verdict": text == "A", "reference_rule": "answer == 'A'"}
    tail = text.split("<CONCLUSION>")[-1]
    rule = "answer.split('<CONCLUSION>')[-1][1] == 'A'"
    if len(tail) < 2:
        return {
            "reference_verdict": None,
            "reference_rule": rule,
            "reference_error": "IndexError: nothing after the tag",
        }
    return {"reference_verdict": tail[1] == "A", "reference_rule": rule}


def speech_evidence(report: SpeechReport, detector: str) -> dict[str, Any]:
    return {
        "speech_detector": detector,
        "speech_segments": [[round(a, 3), round(b, 3)] for a, b in report.segments],
        "speech_ratio": round(report.speech_ratio, 4),
        "speech_seconds": round(sum(b - a for a, b in report.segments), 3),
        "duration": round(report.duration, 3),
        **({"speech_detectors": report.evidence} if report.evidence else {}),
    }


def ask_voice_over(
    mllm: Mllm, video: Path | None, audio: Audio
) -> tuple[bool | None, dict[str, Any], MllmAnswer]:
    """Ask the paper's step-2 question on the video with ``audio`` as its soundtrack.

    Returns (verdict, evidence, answer); the answer's call record gets the parsed verdict.
    """
    from deepsound.steps.cot import parse_voice_over_cot

    answer = mllm.ask(
        VOICE_OVER_QUESTION, video=video, audio=audio, system=VOICE_OVER_SYSTEM_PROMPT, step="step2"
    )
    parsed = parse_voice_over_cot(answer.text)
    answer.record["verdict"] = parsed.has_voice_over
    answer.record["parsed_from"] = parsed.parsed_from
    kind = answer.record.get("model_kind")  # the paper's own checkpoints: their reference parser too
    if kind in ("cot", "qa"):
        reference = reference_voice_over(answer.text, str(kind))
        answer.record.update(reference)  # type: ignore[typeddict-item]
        answer.record["tolerant_verdict"] = parsed.has_voice_over  # type: ignore[typeddict-unknown-key]
        answer.record["parsers_disagree"] = reference["reference_verdict"] != parsed.has_voice_over  # type: ignore[typeddict-unknown-key]
    evidence = {
        "mllm_model": mllm.model_id,
        "mllm_verdict": parsed.has_voice_over,
        "cot_sections": dict(parsed.sections),
        "parsed_from": parsed.parsed_from,
        "parse_reason": parsed.reason,
    }
    # what the reference pipeline's own (strict) parser would have decided, where the model reports it
    evidence.update(
        {k: answer.record[k] for k in ("reference_verdict", "parsers_disagree") if k in answer.record}
    )
    return parsed.has_voice_over, evidence, answer


class SpeechJudge:
    """Voice-over when the speech detector hears any speech (no MLLM)."""

    name = "speech"

    def __init__(self, detector: SpeechDetector, *, min_speech_ratio: float = 0.0) -> None:
        self.detector = detector
        self.min_speech_ratio = float(min_speech_ratio)

    def decide(self, report: SpeechReport) -> bool:
        seconds = sum(b - a for a, b in report.segments)
        return speech_heard(report.has_speech, seconds, report.speech_ratio, min_ratio=self.min_speech_ratio)

    def judge(self, video: Path | None, audio: Audio) -> VoiceOverVerdict:
        report = self.detector.detect(audio)
        verdict = self.decide(report)
        evidence = speech_evidence(report, self.detector.name)
        evidence["decided_by"] = "speech"
        return VoiceOverVerdict(verdict, self.name, evidence=evidence)


class MllmJudge:
    """Always asks the MLLM (the paper's behaviour). A speech detector, when given, only adds evidence."""

    name = "mllm"

    def __init__(self, mllm: Mllm | Callable[[], Mllm], detector: SpeechDetector | None = None) -> None:
        self.mllm = LazyMllm(mllm)
        self.detector = detector

    def judge(self, video: Path | None, audio: Audio) -> VoiceOverVerdict:
        evidence: dict[str, Any] = {}
        if self.detector is not None:
            evidence.update(speech_evidence(self.detector.detect(audio), self.detector.name))
        mllm = self.mllm.get()
        verdict, mllm_evidence, answer = ask_voice_over(mllm, video, audio)
        evidence.update(mllm_evidence)
        evidence["decided_by"] = "mllm" if verdict is not None else "undecided"
        return VoiceOverVerdict(
            verdict, self.name, evidence=evidence, cot_text=answer.text, mllm_calls=[answer.record]
        )


class CascadeJudge:
    """Speech detector first; the MLLM only where speech is heard; speech decides when the MLLM cannot."""

    name = "cascade"

    def __init__(self, mllm: Mllm | Callable[[], Mllm], detector: SpeechDetector) -> None:
        self.detector = detector
        self.speech = SpeechJudge(self.detector)
        self.mllm = LazyMllm(mllm)

    def judge(self, video: Path | None, audio: Audio) -> VoiceOverVerdict:
        report = self.detector.detect(audio)
        evidence = speech_evidence(report, self.detector.name)
        heard = self.speech.decide(report)
        if not heard:
            evidence["decided_by"] = "speech"
            evidence["mllm_skipped"] = "no speech heard"
            return VoiceOverVerdict(False, self.name, evidence=evidence)
        mllm = self.mllm.get()
        verdict, mllm_evidence, answer = ask_voice_over(mllm, video, audio)
        evidence.update(mllm_evidence)
        if verdict is None:
            verdict = heard
            evidence["decided_by"] = "speech_fallback"
        else:
            evidence["decided_by"] = "mllm"
        return VoiceOverVerdict(
            verdict, self.name, evidence=evidence, cot_text=answer.text, mllm_calls=[answer.record]
        )


def build_judge(
    name: str, *, speech: SpeechDetector, mllm: Mllm | Callable[[], Mllm]
) -> SpeechJudge | MllmJudge | CascadeJudge:
    """The judge called ``name`` over the process's speech detector and MLLM (a reasoner or a factory).

    The pipeline builds judges through :mod:`deepsound.registry`, which hands in its one
    speech detector and its one (lazily loaded) MLLM.
    """
    if name not in JUDGE_NAMES:
        raise ConfigError(f"unknown judge {name!r}; choose one of: {', '.join(JUDGE_NAMES)}")
    if name == "speech":
        return SpeechJudge(speech)
    if name == "mllm":
        return MllmJudge(mllm, speech)
    return CascadeJudge(mllm, speech)


@dataclass
class VoiceOverDecision:
    """Step 2's outcome: what the pipeline does (``has_voice_over``) and what the judge said."""

    has_voice_over: bool
    verdict: VoiceOverVerdict
    undecided: bool


def decide_voice_over(
    judge: Judge, video: Path | None, audio: Audio, *, undecided_is_voice_over: bool
) -> VoiceOverDecision:
    """Ask ``judge``; an undecided answer becomes ``undecided_is_voice_over``."""
    verdict = judge.judge(video, audio)
    undecided = verdict.has_voice_over is None
    has_vo = undecided_is_voice_over if undecided else bool(verdict.has_voice_over)
    return VoiceOverDecision(has_vo, verdict, undecided)


def judge_soundtrack(judge: Judge, video: Path | None, audio: Audio | None) -> VoiceOverVerdict:
    """Step 2 on a video as it is: a video without a soundtrack holds no voice-over (nothing is asked)."""
    if audio is None:
        return VoiceOverVerdict(False, judge.name, evidence={"decided_by": "no_audio_track"})
    return judge.judge(video, audio)
