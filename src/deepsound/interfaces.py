"""The contracts between the pipeline and its swappable components.

Each step of DeepSound-V1 is one protocol here, and so is the audio-visual LLM
the planner and the judges ask. The pipeline only speaks to these, so a
component (MMAudio or another video-to-audio model, BS-RoFormer or another
separator, Qwen-Omni or VideoLLaMA2 or another MLLM, Silero or another speech
detector) can be replaced without touching the step loop. Results are plain
dataclasses so that they can be put into the trace as they are.

A component is made known with one registry entry
(:func:`deepsound.registry.register`): its factory receives the component's own
settings dataclass and a :class:`Placement` (device, precision, where weights
are), never the whole pipeline configuration.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from deepsound.audio import Audio
from deepsound.devices import resolve_device, resolve_dtype_name


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


class MllmCall(TypedDict, total=False):
    """The record of one MLLM call, as it goes into the trace (plain data: JSON as it is).

    Every MLLM fills the common keys; a model may add its own (VideoLLaMA2 adds
    ``model_kind``, ``token_ids`` and what the reference's parser decided), and the
    step that asked adds what it read from the answer (``verdict``, ``parsed_from`` …).
    """

    step: str  # "step0", "step2", "step4" or "" for a free question
    model: str
    system: str | None
    prompt: str
    inputs: dict[str, Any]  # what was shown and played (frames, audio seconds …)
    answer: str
    verdict: bool | list[str] | None  # what the asking step read from the answer
    tokens_in: int
    tokens_out: int
    seconds: float
    chat_prompt: str  # the prompt as the model's chat template wrote it
    token_ids: list[int]  # the ids generated (prompt excluded)


@dataclass
class MllmAnswer:
    """One answer and its record (the same dict object is kept in the MLLM's ``calls``)."""

    text: str
    record: MllmCall = field(default_factory=lambda: MllmCall())


@dataclass
class MllmSettings:
    """What every MLLM's settings hold (``--mllm-model``, ``--max-new-tokens``, ``--mllm-adapter``);
    a model's own settings dataclass extends it with what only that model needs."""

    model: str | None = field(
        default=None,
        metadata={"help": "Hub id or local folder of the audio-visual LLM (default: the family's published model).",
                  "flag": "--mllm-model"},
    )  # fmt: skip
    # the paper's budget: a chain of thought cut before <CONCLUSION> decides nothing
    max_new_tokens: int = field(
        default=2048, metadata={"help": "Token budget of each MLLM answer.", "flag": "--max-new-tokens"}
    )
    adapter: Path | None = field(
        default=None,
        metadata={"help": "LoRA adapter folder to load onto the MLLM.", "flag": "--mllm-adapter"},
    )

    def __post_init__(self) -> None:
        if self.adapter is not None:
            self.adapter = Path(self.adapter)
        from deepsound.run_numbers import check_positive_int

        check_positive_int("max new tokens", self.max_new_tokens)


@dataclass(frozen=True)
class Placement:
    """Where a component runs and where it finds its weights: the part of the configuration every
    model needs besides its own settings (a model never sees the whole pipeline configuration).

    ``weights`` are the user's own files standing in for published ones (``--weights NAME=PATH``);
    ``run_files`` names every published file the run needs, so that a failed download can list all
    that are missing at once.
    """

    device: str = "auto"
    dtype: str = "auto"
    weights_dir: Path | None = None
    offline: bool = False
    weights: Mapping[str, Path] = field(default_factory=dict)
    run_files: tuple[str, ...] = ()

    def resolved_device(self) -> str:
        return resolve_device(self.device)

    def resolved_dtype(self, on_cuda: str = "bfloat16") -> str:
        """The one "auto" rule: ``on_cuda`` (bf16 unless a model's reference says otherwise) on CUDA,
        float32 on the CPU; an explicit dtype stands."""
        return resolve_dtype_name(self.dtype, self.resolved_device(), on_cuda)


@dataclass
class Plan:
    """An ordered list of steps, the text it was read from, and what went wrong reading it."""

    steps: list[Step]
    text: str = CANONICAL_PLAN_TEXT
    source: str = "canonical"  # "canonical" or the planner model id
    warnings: list[str] = field(default_factory=list)
    mllm_calls: list[MllmCall] = field(default_factory=list)


DEFAULT_DURATION = 10.0  # seconds generated per clip: the paper's pipeline and evaluation use 10 s clips


@dataclass
class GenerationRequest:
    """What step 1 needs. ``video`` is None for text-only generation."""

    video: Path | None
    prompt: str = ""
    negative_prompt: str = ""
    duration: float = DEFAULT_DURATION
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
    mllm_calls: list[MllmCall] = field(default_factory=list)


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
    mllm_calls: list[MllmCall] = field(default_factory=list)


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


@runtime_checkable
class Mllm(Protocol):
    """The audio-visual LLM asked by the planner (step 0), the judges (step 2) and the MLLM silence check.

    ``ask`` shows the video (its frames, and ``audio`` as its soundtrack when given; ``audio`` alone
    when there is no video) and returns the answer with its call record, which is also kept in
    ``calls``. Decoding is greedy. ``step`` names the step asking ("step0", "step2", "step4"), so a
    model with one checkpoint per step can pick it. A LoRA adapter made by ``deepsound finetune`` is
    part of the contract: ``apply_adapter`` checks it against the loaded base and merges it.
    """

    name: str
    model_id: str
    calls: Sequence[MllmCall]

    def ask(
        self,
        question: str,
        *,
        video: Path | None = None,
        audio: Audio | None = None,
        system: str | None = None,
        step: str = "",
    ) -> MllmAnswer: ...

    def apply_adapter(self, folder: Path) -> None: ...


Mode = Literal["s3", "s4"]
PostProcess = Literal["rm", "rep", "neg"]
JudgeName = Literal["cascade", "mllm", "speech"]
