"""Reading the MLLM's step-0 plan and step-2 chain of thought, on answers written the way models write.

The released pipeline matches the plan line by line against four exact
strings and reads the conclusion as the second character after
``<CONCLUSION>``. These tests pin down the lenient reading that replaces it:
same result on the paper's own format, sensible results on variants, and an
explicit fallback or "undecided" instead of a silent wrong answer.
"""

from __future__ import annotations

import pytest

from deepsound.interfaces import CANONICAL_PLAN_TEXT, CANONICAL_STEPS, Step
from deepsound.steps.cot import cot_sections, parse_voice_over_cot, parse_yes_no
from deepsound.steps.plan import classify_step, parse_plan

G, D, R, S = Step.GENERATE, Step.DETECT_VOICE_OVER, Step.REMOVE_VOICE_OVER, Step.CHECK_SILENCE

# ------------------------------------------------------------------------------------------------- plans


def test_canonical_text_gives_canonical_steps_without_warning():
    plan = parse_plan(CANONICAL_PLAN_TEXT, source="qwen")
    assert plan.steps == list(CANONICAL_STEPS)
    assert plan.warnings == []
    assert plan.text == CANONICAL_PLAN_TEXT and plan.source == "qwen"


WELL_FORMED = {
    "one line, as the regex of the paper allows": CANONICAL_PLAN_TEXT.replace("\n", " "),
    "markdown with chatter": (
        "Sure! Here is a step-by-step plan:\n\n"
        "**Step 1:** Generate audio from the video.\n"
        "**Step 2:** Given the video and its generated audio, determine whether the audio contains voice-over.\n"
        "**Step 3:** Remove the voice-over from the audio.\n"
        "**Step 4:** Determine whether the audio is silent.\n\n"
        "Following these steps yields clean, synchronised sound."
    ),
    "numbered list": (
        "1. Generate audio from video.\n"
        "2. Check whether the generated audio contains a voice-over.\n"
        "3) If there is a voice-over, remove it.\n"
        "4. Check if the resulting audio is silent."
    ),
    "lower case, dashes, paraphrase": (
        "step 1 - synthesize the soundtrack for the clip\n"
        "step 2 - detect narration in the soundtrack\n"
        "step 3 - strip the narration out\n"
        "step 4 - verify whether what is left is silent"
    ),
    "headings with the description below": (
        "### Step 1\nGenerate the audio from the video.\n\n"
        "### Step 2.\nJudge whether the audio contains human speech (voice-over).\n\n"
        "### STEP 3:\nSeparate and remove the vocals.\n\n"
        "### Step 4:\nDetermine whether the audio is quiet.\n"
    ),
    "bold number after the word": (
        "Step 1**:** Generate audio from video.\n"
        "Step 2**:** Determine whether the audio contains voice-over.\n"
        "Step 3**:** Remove voice-over from audio.\n"
        "Step 4**:** Determine whether the audio is silent."
    ),
}


@pytest.mark.parametrize("name", list(WELL_FORMED))
def test_variants_of_the_full_plan(name: str):
    plan = parse_plan(WELL_FORMED[name])
    assert plan.steps == [G, D, R, S], plan.warnings
    assert plan.warnings == []
    assert plan.text == WELL_FORMED[name]


@pytest.mark.parametrize(
    ("description", "step"),
    [
        ("Generate audio from video.", G),
        ("Given a video and its generated audio, determine whether the audio contains voice-over.", D),
        ("Remove voice-over from audio.", R),
        ("Determine whether the audio is silent.", S),
        ("Is the remaining audio silent?", S),
        ("If the audio contains narration, separate it out", R),
        ("Determine whether there is speech, and remove it", D),
        ("Create a soundtrack that matches the video", G),
        ("Generate audio, keeping silence where nothing moves", G),
        ("Generate audio that is quiet where nothing moves", G),
        ("Determine whether the audio is silent after removing the voice", S),
        ("Is there a voice-over?", D),
        ("Voice-over removal", R),
        ("Silence check", S),
        ("Remove background noise", None),
        ("Generate a caption for the video", None),
        ("Dance.", None),
        ("", None),
    ],
)
def test_steps_are_recognised_by_meaning(description: str, step: Step | None):
    assert classify_step(description) is step


def test_partial_plan_is_followed_with_a_warning():
    text = (
        "Step1: Generate audio from video.\n"
        "Step2: Given a video and its generated audio, determine whether the audio contains voice-over.\n"
        "Step3: Remove voice-over from audio (only if found in Step 2)."
    )
    plan = parse_plan(text)
    assert plan.steps == [G, D, R]
    assert len(plan.warnings) == 1 and "step 4" in plan.warnings[0]
    strict = parse_plan(text, allow_partial=False)
    assert strict.steps == list(CANONICAL_STEPS)
    assert "omits step 4" in strict.warnings[0]


def test_removing_without_judging_is_a_runnable_plan():
    plan = parse_plan(
        "Step1: Generate audio from video.\nStep2: Remove voice-over from audio.\nStep3: Is it silent?"
    )
    assert plan.steps == [G, R, S]
    assert "step 2" in plan.warnings[0]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (
            "Step1: Generate audio from video.\nStep2: Remove voice-over from audio.\n"
            "Step3: Determine whether the audio contains voice-over.\nStep4: Determine whether the audio is silent.",
            "comes after",
        ),
        (
            "Step1: Determine whether the audio contains voice-over.\nStep2: Generate audio from video.",
            "comes after",
        ),
        (
            "Step1: Remove voice-over from audio.\nStep2: Determine whether the audio is silent.",
            "does not start",
        ),
        (
            "Step1: Generate audio from video.\nStep2: Determine whether the audio is silent.",
            "without removing",
        ),
        ("Step1: Generate audio from video.\nStep2: Generate audio from video.", "twice"),
        ("Step1: Generate audio from video.\nStep2: Dance around the fire.", "not a known step"),
        ("I am sorry, I cannot watch videos.", "no steps found"),
        ("", "empty answer"),
        ("   \n ", "empty answer"),
    ],
)
def test_unusable_plans_fall_back_to_canonical(text: str, why: str):
    plan = parse_plan(text, source="qwen")
    assert plan.steps == list(CANONICAL_STEPS)
    assert len(plan.warnings) == 1
    assert why in plan.warnings[0] and "canonical" in plan.warnings[0]
    assert plan.text == text and plan.source == "qwen"


def test_none_is_an_empty_answer():
    plan = parse_plan(None)
    assert plan.steps == list(CANONICAL_STEPS) and "empty answer" in plan.warnings[0]


def test_step_mentioned_inside_a_sentence_is_not_a_header():
    text = CANONICAL_PLAN_TEXT.replace(
        "Remove voice-over from audio.", "Remove voice-over (see Step 2) from audio."
    )
    assert parse_plan(text).steps == list(CANONICAL_STEPS)
    assert parse_plan(text).warnings == []


# ------------------------------------------------------------------------------------- chains of thought

WELL_FORMED_COT = (
    "<SUMMARY>I will describe what is seen and heard, then decide whether a voice-over is present.</SUMMARY>\n"
    "<CAPTION>A man walks along a beach while waves crash. A calm male voice describes the scenery; "
    "nobody on screen is talking.</CAPTION>\n"
    "<REASONING>The voice is not synchronised with any visible speaker and sounds recorded separately, "
    "which is typical of narration. Options were A. Yes, B. No.</REASONING>\n"
    "<CONCLUSION>\nA\n</CONCLUSION>"
)


def test_well_formed_cot():
    answer = parse_voice_over_cot(WELL_FORMED_COT)
    assert answer.has_voice_over is True
    assert answer.parsed_from == "conclusion"
    assert set(answer.sections) == {"summary", "caption", "reasoning", "conclusion"}
    assert answer.sections["conclusion"] == "A"
    assert answer.sections["caption"].startswith("A man walks")


def test_well_formed_cot_answering_no():
    text = WELL_FORMED_COT.replace("<CONCLUSION>\nA\n</CONCLUSION>", "<CONCLUSION> B. No </CONCLUSION>")
    answer = parse_voice_over_cot(text)
    assert (answer.has_voice_over, answer.parsed_from) == (False, "conclusion")


def test_missing_closing_tags_and_lower_case_tags():
    text = (
        "<summary>Describe, then answer.\n<caption>Birds chirp in a forest; a woman's voice is heard "
        "once (A) possibly\n<reasoning>The voice belongs to the person on screen, so it is not a voice-over.\n"
        "<conclusion>The answer is B"
    )
    answer = parse_voice_over_cot(text)
    assert answer.has_voice_over is False
    assert answer.parsed_from == "conclusion"
    assert answer.sections["reasoning"].startswith("The voice belongs")
    assert "(A)" in answer.sections["caption"]  # a letter outside the conclusion does not count


@pytest.mark.parametrize(
    ("conclusion", "expected"),
    [
        ("A", True),
        ("A.", True),
        ("A. Yes", True),
        ("(A)", True),
        ("**B**", False),
        ("B) No, there is none.", False),
        ("The answer is B.", False),
        ("Answer: A", True),
        ("I choose option A.", True),
        ("Yes", True),
        ("No.", False),
        ("A voice-over is present in the audio.", True),
        ("There is no voice-over; only ambient sound.", False),
    ],
)
def test_conclusion_forms(conclusion: str, expected: bool):
    answer = parse_voice_over_cot(
        f"<SUMMARY>s</SUMMARY><REASONING>r</REASONING><CONCLUSION>{conclusion}</CONCLUSION>"
    )
    assert answer.has_voice_over is expected, answer.reason
    assert answer.parsed_from == "conclusion"


@pytest.mark.parametrize(
    ("text", "expected", "parsed_from"),
    [
        ("A", True, "bare_letter"),
        ("B.", False, "bare_letter"),
        (" (B) ", False, "bare_letter"),
        ("The correct answer is A.", True, "bare_letter"),
        ("Yes.", True, "yes_no"),
        ("No", False, "yes_no"),
        ("no, there is only music and wind", False, "yes_no"),
        ("Conclusion: B", False, "conclusion"),
    ],
)
def test_bare_answers(text: str, expected: bool, parsed_from: str):
    answer = parse_voice_over_cot(text)
    assert (answer.has_voice_over, answer.parsed_from) == (expected, parsed_from), answer.reason


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "It might be A, since someone speaks, or B, because it could just be crowd noise. Hard to tell.",
        "The audio might contain a voice-over (A), but it could also be a crowd (B).",
        "Answer: A. On second thought, the answer is B.",
        "<CONCLUSION>A. No</CONCLUSION>",
        "<CONCLUSION>Yes and no.</CONCLUSION>",
        "<CONCLUSION>Hmm, difficult.</CONCLUSION>",
        "A dog barks in the distance.",
    ],
)
def test_rambling_contradictory_or_empty_answers_are_undecided(text: str):
    answer = parse_voice_over_cot(text)
    assert answer.has_voice_over is None
    assert answer.parsed_from == "undecided"
    assert answer.reason


def test_reference_format_with_newline_after_tag():
    """The released pipeline reads ``output.split("<CONCLUSION>")[-1][1]``: for its own format we agree."""
    for letter, expected in (("A", True), ("B", False)):
        text = f"<SUMMARY>x</SUMMARY><CONCLUSION>\n{letter}</CONCLUSION>"
        assert (text.split("<CONCLUSION>")[-1][1] == "A") is expected
        assert parse_voice_over_cot(text).has_voice_over is expected


def test_repeated_section_keeps_the_last():
    sections = cot_sections("<CONCLUSION>A</CONCLUSION> wait <CONCLUSION>B</CONCLUSION>")
    assert sections == {"conclusion": "B"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes.", True),
        ("yes, the audio is silent", True),
        ("No", False),
        ("no.", False),
        ("Nope", False),
        ("A. Yes", True),
        ("B. No", False),
        ("The answer is no.", False),
        ("<CONCLUSION>Yes</CONCLUSION>", True),
        ("**No**", False),
        ("Yes and no", None),
        ("There is no sound at all.", None),  # a "no" inside a sentence is not an answer
        ("Maybe.", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_yes_no(text: str | None, expected: bool | None):
    assert parse_yes_no(text) is expected
