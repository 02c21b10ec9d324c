"""Step 0 planners: the paper's fixed four steps, or the plan the MLLM writes for this video.

The released pipeline always asks its fine-tuned model for the plan and then
matches the answer against the four step sentences it was trained to write; for
that model the answer is the canonical plan. ``canonical`` (the default) runs
that plan without the MLLM call, ``mllm`` asks for it on the video alone, as the
paper does, and follows what :func:`deepsound.steps.parsing.parse_plan` makes of it (the
canonical plan, with a warning, when the answer cannot be run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepsound.errors import ConfigError
from deepsound.interfaces import Plan
from deepsound.steps.prompts import PLAN_QUESTION, PLAN_SYSTEM_PROMPT
from deepsound.steps.voice_over import LazyMllm

if TYPE_CHECKING:
    from deepsound.config import PipelineConfig
    from deepsound.models.qwen_omni.reasoner import OmniReasoner

PLANNER_NAMES = ("canonical", "mllm")


class CanonicalPlanner:
    """The paper's four steps for every video; no model is asked."""

    name = "canonical"

    def plan(self, video: Path) -> Plan:
        from deepsound.steps.parsing import canonical_plan

        return canonical_plan()


class MllmPlanner:
    """Asks the MLLM the paper's step-0 question on the frames of ``video`` (no audio)."""

    name = "mllm"

    def __init__(
        self, mllm: OmniReasoner | Callable[[], OmniReasoner], *, system: str | None = PLAN_SYSTEM_PROMPT
    ):
        self.mllm = LazyMllm(mllm)
        self.system = system

    def plan(self, video: Path) -> Plan:
        from deepsound.steps.parsing import parse_plan

        mllm = self.mllm.get()
        answer = mllm.ask(PLAN_QUESTION, video=video, system=self.system, step="step0")
        plan = parse_plan(answer.text, source=mllm.model_id)
        answer.record["verdict"] = [step.name.lower() for step in plan.steps]
        answer.record["plan_warnings"] = list(plan.warnings)
        plan.mllm_calls = [answer.record]
        return plan


def build_planner(name: str, config: PipelineConfig | None = None, *, mllm: Any = None) -> Any:
    """The planner called ``name``; ``mllm`` is a reasoner or a factory (default: the configured one)."""
    if name == "canonical":
        return CanonicalPlanner()
    if name != "mllm":
        raise ConfigError(f"unknown planner {name!r}; choose one of: {', '.join(PLANNER_NAMES)}")
    if mllm is None:
        if config is None:
            raise ConfigError("the mllm planner needs an MLLM or a configuration to load one from")
        from deepsound.models.qwen_omni.reasoner import OmniReasoner

        def mllm() -> OmniReasoner:
            return OmniReasoner.from_config(config)

    return MllmPlanner(mllm)
