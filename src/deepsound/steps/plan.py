"""Step 0 planners: the paper's fixed four steps, or the plan the MLLM writes for this video.

The released pipeline always asks its fine-tuned model for the plan and then
matches the answer against the four step sentences it was trained to write; for
that model the answer is the canonical plan. ``canonical`` (the default) runs
that plan without the MLLM call, ``mllm`` asks for it on the video alone, as the
paper does, and follows what :func:`parse_plan` makes of it (the
canonical plan, with a warning, when the answer cannot be run).

Reading the plan
----------------
The plan is free text from a language model, so it is read leniently and the
reading can fail: it never raises, it returns what it could make of the text and
says how (``Plan.warnings``), so the trace shows why the pipeline did what it did.

The paper's model answers step 0 with four lines ``Step1: ...`` to
``Step4: ...``, and the released pipeline matches each line's text exactly.
Here each header (``Step1:``, ``**Step 2:**``, ``step 3 -``, ``### Step 4.``,
or a numbered list ``1.`` / ``2)`` when there are no ``Step`` headers) is
followed by its description - the first non-empty line after the header -
and the description is mapped to a :class:`~deepsound.interfaces.Step` by
meaning (its verbs and objects), not by its exact wording or its number.

What a plan may leave out, and what it may not:

* steps run in the paper's order only; a plan that reorders them (removing the
  voice before judging it, checking silence before removing anything) or names
  a step twice cannot be run as written;
* generation must come first, since every other step works on its audio;
* the silence check only makes sense on what the removal left, so it needs
  step 3 before it;
* any other omission (e.g. no silence check, or removing without judging) is a
  plan that can be run; it is followed as written, with a warning naming what
  was left out. ``allow_partial=False`` refuses those too.

A plan that breaks a rule, holds a step whose meaning is not recognised, or
holds no steps at all is replaced by the canonical four-step plan, with a
warning saying why. The plan text is kept as the model wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from deepsound.errors import ConfigError
from deepsound.interfaces import CANONICAL_PLAN_TEXT, CANONICAL_STEPS, Mllm, Plan, Planner, Step
from deepsound.steps.prompts import PLAN_QUESTION, PLAN_SYSTEM_PROMPT
from deepsound.steps.voice_over import LazyMllm

PLANNER_NAMES = ("canonical", "mllm")


class CanonicalPlanner:
    """The paper's four steps for every video; no model is asked."""

    name = "canonical"

    def plan(self, video: Path) -> Plan:
        return canonical_plan()


class MllmPlanner:
    """Asks the MLLM the paper's step-0 question on the frames of ``video`` (no audio)."""

    name = "mllm"

    def __init__(self, mllm: Mllm | Callable[[], Mllm], *, system: str | None = PLAN_SYSTEM_PROMPT):
        self.mllm = LazyMllm(mllm)
        self.system = system

    def plan(self, video: Path) -> Plan:
        mllm = self.mllm.get()
        answer = mllm.ask(PLAN_QUESTION, video=video, system=self.system, step="step0")
        plan = parse_plan(answer.text, source=mllm.model_id)
        answer.record["verdict"] = [step.name.lower() for step in plan.steps]
        answer.record["plan_warnings"] = list(plan.warnings)
        plan.mllm_calls = [answer.record]
        return plan


def build_planner(name: str, *, mllm: Mllm | Callable[[], Mllm] | None = None) -> Planner:
    """The planner called ``name``; ``mllm`` is the process's reasoner or a factory of it."""
    if name == "canonical":
        return CanonicalPlanner()
    if name != "mllm":
        raise ConfigError(f"unknown planner {name!r}; choose one of: {', '.join(PLANNER_NAMES)}")
    if mllm is None:
        raise ConfigError("the mllm planner needs an MLLM")
    return MllmPlanner(mllm)


# ------------------------------------------------------------------------ reading the plan

# "Step1:" anywhere (the paper's plans may sit on one line), also "Step 2**:" and "step #3:"
_STEP_HEADER_INLINE = re.compile(r"(?<![A-Za-z])step\s*#?\s*(\d+)\s*(?:\*\*|__|\*|_)?\s*:", re.I)
# at the start of a line any delimiter, or none: "Step 1 - ...", "**Step 2.**", "### STEP 3) ...", "Step 4 ..."
_STEP_HEADER_LINE = re.compile(
    r"^[ \t>#*_\-]*step\s*#?\s*(\d+)\s*(?:\*\*|__|\*|_)?\s*(?:[:.)\-\u2013\u2014]|(?=\s)|$)", re.I | re.M
)
# "1. Generate ...", "2) Determine ...", "**3.** Remove ...", at the start of a line
_NUMBERED_ITEM = re.compile(r"^[ \t>#*_\-]*(\d+)\s*(?:\*\*|__)?\s*[.)]\s*(?:\*\*|__)?", re.M)

_MARKUP_EDGES = " \t*_#`>~-:.\u2013\u2014\"'"

_VOICE = re.compile(r"\b(?:voice|speech|narrat|vocal|dialog|speak|spoken|talk|singing)", re.I)
_SOUND = re.compile(r"\b(?:audio|sound|soundtrack|music|track|foley)", re.I)
_SILENT = re.compile(r"\b(?:silen|quiet|mute|inaudib)", re.I)
_CHECK_VERB = re.compile(
    r"\b(?:determin|detect|judg|check|whether|identif|contain|verif|assess|analy[sz]|classif|"
    r"recogni|examin|inspect|decid|evaluat|test)",
    re.I,
)
# "is it silent?", "is there a voice-over?" ask without a verb like "check"
_QUESTION = re.compile(r"\b(?:is|are)\b", re.I)
# "If there is a voice-over, remove it", "Given the generated audio, determine ...": the main verb follows
_LEAD_CLAUSE = re.compile(
    r"^\s*(?:if|when|whenever|in\s+case|should|given|after|once|using|with)\b[^,;]*[,;]", re.I
)
_REMOVE_VERB = re.compile(
    r"\b(?:remov|eliminat|strip|separat|suppress|delet|filter|extract|eras|cut\b|isolat|clean|mut(?:e|ing)\b)",
    re.I,
)
_GENERATE_VERB = re.compile(r"\b(?:generat|synthes|creat|produc|compos|render)", re.I)

_STEP_LABELS = {
    Step.GENERATE: "step 1 (generate audio)",
    Step.DETECT_VOICE_OVER: "step 2 (detect voice-over)",
    Step.REMOVE_VOICE_OVER: "step 3 (remove voice-over)",
    Step.CHECK_SILENCE: "step 4 (check silence)",
}


def canonical_plan(source: str = "canonical", warnings: list[str] | None = None) -> Plan:
    """The paper's four steps, as a :class:`Plan`."""
    return Plan(
        steps=list(CANONICAL_STEPS), text=CANONICAL_PLAN_TEXT, source=source, warnings=list(warnings or [])
    )


def classify_step(description: str) -> Step | None:
    """Which step a one-line description means, or None when it is not recognisably one.

    The main verb decides - the first one after an introductory clause such as
    "Given a video and its generated audio," or "If there is a voice-over,":
    generating needs something audible, removing needs a voice (named
    anywhere, "if there is narration, cut it"), and a check or question is
    about silence when it mentions silence, otherwise about a voice when it
    mentions one.
    """
    text = description.strip()
    main = _LEAD_CLAUSE.sub("", text, count=1)
    verbs = []
    for kind, pattern in (("generate", _GENERATE_VERB), ("remove", _REMOVE_VERB), ("check", _CHECK_VERB)):
        found = pattern.search(main)
        if found:
            verbs.append((found.start(), kind))
    question = _QUESTION.search(main)
    if question and (_SILENT.search(text) or _VOICE.search(text)):
        verbs.append((question.start(), "check"))
    if not verbs:
        return None
    kind = min(verbs)[1]
    if kind == "generate":
        return Step.GENERATE if _SOUND.search(text) else None
    if kind == "remove":
        return Step.REMOVE_VOICE_OVER if _VOICE.search(text) else None
    if _SILENT.search(text):
        return Step.CHECK_SILENCE
    return Step.DETECT_VOICE_OVER if _VOICE.search(text) else None


def _overlap(a: re.Match[str], b: re.Match[str]) -> bool:
    return a.start() < b.end() and b.start() < a.end()


def _split_steps(text: str) -> list[tuple[str, str]]:
    """(header, description) pairs, in the order written."""
    lines = list(_STEP_HEADER_LINE.finditer(text))
    inline = [m for m in _STEP_HEADER_INLINE.finditer(text) if not any(_overlap(m, line) for line in lines)]
    matches = sorted(lines + inline, key=lambda m: m.start())
    if not matches:
        matches = list(_NUMBERED_ITEM.finditer(text))
    pairs = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[match.end() : end]
        description = ""
        for line in body.splitlines():
            line = line.strip(_MARKUP_EDGES)
            if line:
                description = line
                break
        pairs.append((match.group(0).strip(), description))
    return pairs


def parse_plan(text: str | None, *, source: str = "mllm", allow_partial: bool = True) -> Plan:
    """The steps of a step-0 answer, or the canonical plan with a warning when it cannot be run."""
    raw = text or ""

    def fallback(why: str) -> Plan:
        plan = canonical_plan(
            source=source, warnings=[f"plan not usable ({why}); ran the canonical 4-step plan"]
        )
        plan.text = raw
        return plan

    pairs = _split_steps(raw)
    if not pairs:
        return fallback("no steps found" if raw.strip() else "empty answer")
    steps: list[Step] = []
    for header, description in pairs:
        step = classify_step(description)
        if step is None:
            shown = description if len(description) <= 80 else description[:77] + "..."
            return fallback(f"{header} {shown!r} is not a known step")
        if step in steps:
            return fallback(f"{_STEP_LABELS[step]} appears twice")
        if steps and step.value < steps[-1].value:
            return fallback(f"{_STEP_LABELS[step]} comes after {_STEP_LABELS[steps[-1]]}")
        steps.append(step)
    if steps[0] is not Step.GENERATE:
        return fallback("it does not start by generating audio")
    if Step.CHECK_SILENCE in steps and Step.REMOVE_VOICE_OVER not in steps:
        return fallback("it checks silence without removing the voice first")
    missing = [s for s in CANONICAL_STEPS if s not in steps]
    warnings = []
    if missing:
        if not allow_partial:
            return fallback("it omits " + ", ".join(_STEP_LABELS[s] for s in missing))
        warnings.append("plan omits " + ", ".join(_STEP_LABELS[s] for s in missing) + "; followed as written")
    return Plan(steps=steps, text=raw, source=source, warnings=warnings)
