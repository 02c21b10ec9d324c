"""The contracts between the pipeline and its swappable components.

Each step of DeepSound-V1 is one protocol here. The pipeline only speaks to
these, so a component (MMAudio or another video-to-audio model, BS-RoFormer or
another separator, Qwen-Omni or the speech-only judge) can be replaced without
touching the step loop. Results are plain dataclasses so that they can be put
into the trace as they are.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from deepsound.audio import Audio


class Step(enum.Enum):
    """The four steps of the paper's plan (step 0 is the planning itself)."""

    GENERATE = 1
    DETECT_VOICE_OVER = 2
    REMOVE_VOICE_OVER = 3
    CHECK_SILENCE = 4


CANONICAL_PLAN_TEXT = (
    "Step1: Generate audio from video.\n"
    "Step2: Given a video and its generated audio, determine whether the audio contains voice-over.\n"
    "Step3: Remove voice-over from audio.\n"
    "Step4: Determine whether the audio is silent."
)
CANONICAL_STEPS: tuple[Step, ...] = (
    Step.GENERATE,
    Step.DETECT_VOICE_OVER,
    Step.REMOVE_VOICE_OVER,
    Step.CHECK_SILENCE,
)


@dataclass
class Plan:
    """An ordered list of steps, the text it was read from, and what went wrong reading it."""

    steps: list[Step]
    text: str = CANONICAL_PLAN_TEXT
    source: str = "canonical"  # "canonical" or the planner model id
    warnings: list[str] = field(default_factory=list)
    mllm_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class GenerationRequest:
    """What step 1 needs. ``video`` is None for text-only generation."""

    video: Path | None
    prompt: str = ""
    negative_prompt: str = ""
    duration: float = 8.0
    seed: int = 42
    num_steps: int = 25
    cfg_strength: float = 4.5
    start: float = 0.0  # seconds into the video where this stretch of audio begins


@dataclass
class Generation:
    """Step 1's result: the audio and how it was made (stage timings, windows, seeds)."""

    audio: Audio
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class VoiceOverVerdict:
    """Step 2's answer.

    ``has_voice_over`` is None only when the judge could not decide; the
    pipeline then treats it as the configured default and records that.
    """

    has_voice_over: bool | None
    judge: str
    evidence: dict[str, Any] = field(default_factory=dict)
    cot_text: str | None = None
    mllm_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Separation:
    """Step 3's result: what is kept (mix minus vocals) and what was removed."""

    instrumental: Audio
    vocals: Audio
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class SilenceReport:
    """Step 4's answer with the numbers behind it."""

    is_silent: bool
    silent_frame_ratio: float
    evidence: dict[str, Any] = field(default_factory=dict)
    mllm_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SpeechReport:
    """Speech heard in an audio track: segments in seconds and their share of the track."""

    segments: list[tuple[float, float]]
    speech_ratio: float
    duration: float
    # what each underlying detector heard, when the report fuses several (kept in the trace)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def has_speech(self) -> bool:
        return bool(self.segments)


@runtime_checkable
class Planner(Protocol):
    """Step 0: read the video and write the plan."""

    name: str

    def plan(self, video: Path) -> Plan: ...


@runtime_checkable
class Generator(Protocol):
    """Step 1: a video-to-audio model."""

    name: str
    sample_rate: int

    def generate(self, request: GenerationRequest) -> Generation | Audio:
        """The audio with its evidence; a bare :class:`Audio` is accepted and given empty evidence."""
        ...


@runtime_checkable
class Judge(Protocol):
    """Step 2: does ``audio`` (generated for ``video``) hold a voice-over?"""

    name: str

    def judge(self, video: Path | None, audio: Audio) -> VoiceOverVerdict: ...


@runtime_checkable
class Separator(Protocol):
    """Step 3: split the voice from the rest."""

    name: str

    def separate(self, audio: Audio) -> Separation: ...


@runtime_checkable
class SilenceDetector(Protocol):
    """Step 4: is what is left silent?"""

    name: str

    def detect(self, audio: Audio, video: Path | None = None) -> SilenceReport: ...


@runtime_checkable
class SpeechDetector(Protocol):
    """A cheap detector of human speech, in front of the expensive MLLM."""

    name: str

    def detect(self, audio: Audio) -> SpeechReport: ...


Mode = Literal["s3", "s4"]
PostProcess = Literal["rm", "rep", "neg"]
JudgeName = Literal["cascade", "mllm", "speech"]
