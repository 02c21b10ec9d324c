"""The questions asked to the MLLM are the paper's, word for word; the system prompts ask for what the parsers read.

The expected question strings are copied from the paper's released pipeline
(``pipeline/step0.py`` and ``pipeline/step2.py``): its model was fine-tuned on
exactly these, so a paraphrase would be a behaviour change.
"""

from __future__ import annotations

import re

from deepsound.interfaces import CANONICAL_STEPS
from deepsound.steps import prompts
from deepsound.steps.plan import parse_plan


def test_step0_question_is_the_papers() -> None:
    assert prompts.PLAN_QUESTION == "Generate high-quality audio from video step-by-step."


def test_step2_question_is_the_papers() -> None:
    assert prompts.VOICE_OVER_QUESTION == (
        "Given a video and its corresponding audio, determine whether the audio contains voice-over? "
        "Options: A. Yes, B. No. Choose A or B."
    )


def test_step4_question_is_the_figures() -> None:
    assert prompts.SILENCE_QUESTION == "Is the audio silent?"


def test_cot_system_prompt_asks_for_the_four_tagged_parts_in_order() -> None:
    tags = re.findall(r"<(SUMMARY|CAPTION|REASONING|CONCLUSION)>", prompts.VOICE_OVER_SYSTEM_PROMPT)
    closing = re.findall(r"</(SUMMARY|CAPTION|REASONING|CONCLUSION)>", prompts.VOICE_OVER_SYSTEM_PROMPT)
    assert tags == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
    assert closing == tags
    assert "A or B" in prompts.VOICE_OVER_SYSTEM_PROMPT


def test_plan_system_prompt_shows_a_plan_the_parser_reads_as_the_canonical_steps() -> None:
    example = prompts.PLAN_SYSTEM_PROMPT.split("like this:\n", 1)[1]
    plan = parse_plan(example)
    assert plan.steps == list(CANONICAL_STEPS)
    assert plan.warnings == []
