"""Small stand-in components for orchestration tests of the step loop.

They exist only to drive :class:`deepsound.pipeline.Pipeline` through every
branch quickly; the real components have their own tests, and the end-to-end
tests run the tiny real configurations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepsound.audio import Audio
from deepsound.interfaces import (
    CANONICAL_PLAN_TEXT,
    CANONICAL_STEPS,
    GenerationRequest,
    Plan,
    Separation,
    Step,
    VoiceOverVerdict,
)


def tone(seconds: float, sample_rate: int = 16000, freq: float = 440.0, amp: float = 0.3) -> Audio:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return Audio((amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), sample_rate)


@dataclass
class ToneGenerator:
    """A 'generator' whose pitch depends on the negative prompt, so tests can tell calls apart."""

    name: str = "tone"
    sample_rate: int = 16000
    requests: list[GenerationRequest] = field(default_factory=list)

    def generate(self, request: GenerationRequest) -> Audio:
        self.requests.append(request)
        freq = 880.0 if "human voice" in request.negative_prompt else 440.0
        return tone(request.duration, self.sample_rate, freq)


@dataclass
class ScriptedJudge:
    answer: bool | None
    name: str = "scripted"
    calls: int = 0

    def judge(self, video: Path | None, audio: Audio) -> VoiceOverVerdict:
        self.calls += 1
        return VoiceOverVerdict(self.answer, self.name, evidence={"scripted": True})


@dataclass
class ScalingSeparator:
    """Keeps ``keep`` of the mix as 'instrumental' (0 makes it silent)."""

    keep: float = 0.0
    name: str = "scaling"
    calls: int = 0

    def separate(self, audio: Audio) -> Separation:
        self.calls += 1
        inst = Audio(audio.waveform * self.keep, audio.sample_rate)
        vocals = Audio(audio.waveform * (1 - self.keep), audio.sample_rate)
        return Separation(inst, vocals, evidence={"keep": self.keep})


@dataclass
class FixedPlanner:
    steps: tuple[Step, ...] = CANONICAL_STEPS
    name: str = "fixed"

    def plan(self, video: Path) -> Plan:
        return Plan(list(self.steps), CANONICAL_PLAN_TEXT, source=self.name)


class Unbuildable:
    """Stands where a component must never be needed; touching it fails the test."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __getattr__(self, item: str):  # noqa: ANN204
        raise AssertionError(f"the {self.kind} was used but should not have been")
