"""Reading what the MLLM writes: the step-0 plan and the step-2 chain of thought.

Both are free text from a language model, so both are read leniently and both
can fail: a reading never raises, it returns what it could make of the text
and says how (``Plan.warnings``, ``CotAnswer.parsed_from``/``reason``), so the
trace shows why the pipeline did what it did.

Plans
-----
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

Chains of thought
-----------------
The step-2 judge answers in ``<SUMMARY> <CAPTION> <REASONING> <CONCLUSION>``
sections to the question "does the audio contain voice-over? A. Yes, B. No".
The conclusion is read for a chosen letter ("A", "A. Yes", "(B)", "The answer
is B"), then for a leading yes/no, then for a plain statement ("no voice-over
is present"). Without a conclusion, the whole answer is read for a chosen
letter or a leading yes/no. Two different choices in one answer, or no choice
at all, give an explicit undecided result (``has_voice_over=None``) rather
than a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from deepsound.interfaces import CANONICAL_PLAN_TEXT, CANONICAL_STEPS, Plan, Step

__all__ = [
    "CotAnswer",
    "canonical_plan",
    "classify_step",
    "parse_plan",
    "parse_voice_over_cot",
    "parse_yes_no",
]

# ---------------------------------------------------------------------------------------------- plans

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


# ---------------------------------------------------------------------------------- chains of thought

SECTIONS = ("summary", "caption", "reasoning", "conclusion")
_OPEN_TAG = re.compile(r"<\s*(summary|caption|reasoning|conclusion)\s*>", re.I)
_ANY_TAG = re.compile(r"<\s*/?\s*(?:summary|caption|reasoning|conclusion)\s*>", re.I)
_CONCLUSION_HEADING = re.compile(r"^[ \t>#*_\-]*conclusion[ \t*_]*[:\-\u2013\u2014][ \t*_]*", re.I | re.M)

_EDGE = " \t\r\n*_`\"'"
# a letter opening the answer: "A", "A.", "(B)", "B) No", "A\n..." - but not the article in "A dog barks"
_LEADING_LETTER = re.compile(r"^[\s*_`\"'(\[]*([AB])(?![A-Za-z0-9])(?![ \t]+[a-z])[)\]]?")
_PHRASE_LETTER = re.compile(
    r"(?i:\b(?:answer|option|choice|choose|chose|chosen|select|selected|pick|picked|conclusion|verdict))\b"
    r"(?:\s+(?i:is|would\s+be|should\s+be|will\s+be|was))?\s*[:=]?\s*[*_`\"'(\[]*([AB])(?![A-Za-z0-9])"
)
_PAREN_LETTER = re.compile(r"[(\[]([AB])[)\]]")
_YES = r"yes|yeah|yep|true|correct|affirmative"
_NO = r"no|nope|false|negative"
_LEADING_YES_NO = re.compile(rf"^[\s*_`\"'(\[]*(?:({_YES})|({_NO}))\b", re.I)
_BOTH_YES_NO = re.compile(r"^[\s*_`\"']*(?:yes\s*(?:/|and|or|&)\s*no|no\s*(?:/|and|or|&)\s*yes)\b", re.I)
_PHRASE_YES_NO = re.compile(rf"\banswer\s*(?:is|would\s+be|:)\s*[*_`\"']*(?:({_YES})|({_NO}))\b", re.I)
_VOICE_OVER = r"(?:voice[\s-]*overs?|narrat\w*|narrator|human\s+voice|speech|speaking|spoken\s+words?)"
_NEGATED_VO = re.compile(
    rf"\b(?:no|not|never|without|none|isn't|doesn't|does\s+not|lacks?|absence\s+of|free\s+of)\b"
    rf"[^.;!?]{{0,40}}?\b{_VOICE_OVER}|\b{_VOICE_OVER}\b[^.;!?]{{0,20}}?\b(?:absent|none|not\s+present)\b",
    re.I,
)
_AFFIRMED_VO = re.compile(rf"\b{_VOICE_OVER}\b", re.I)


@dataclass(frozen=True)
class CotAnswer:
    """What a step-2 answer says: ``has_voice_over`` is None when it could not be read or contradicts itself.

    ``parsed_from`` is "conclusion", "bare_letter", "yes_no" or "undecided";
    ``reason`` says in a few words what was read (or why nothing was).
    """

    has_voice_over: bool | None
    sections: dict[str, str] = field(default_factory=dict)
    parsed_from: str = "undecided"
    reason: str = ""


def cot_sections(text: str) -> dict[str, str]:
    """The tagged sections of an answer, tolerant of case, spacing and missing closing tags.

    A section runs from its opening tag to its closing tag, or to the next
    section's opening tag, or to the end. A section written twice keeps its
    last occurrence (the model's final word).
    """
    sections: dict[str, str] = {}
    opens = list(_OPEN_TAG.finditer(text))
    for i, match in enumerate(opens):
        name = match.group(1).lower()
        end = opens[i + 1].start() if i + 1 < len(opens) else len(text)
        body = text[match.end() : end]
        close = re.search(rf"<\s*/\s*{name}\s*>", body, re.I)
        if close:
            body = body[: close.start()]
        sections[name] = _ANY_TAG.sub(" ", body).strip()
    return sections


def _chosen_letters(text: str) -> tuple[set[str], re.Match[str] | None]:
    lead = _LEADING_LETTER.match(text)
    letters = {m.group(1) for m in _PHRASE_LETTER.finditer(text)}
    letters |= {m.group(1) for m in _PAREN_LETTER.finditer(text)}
    if lead:
        letters.add(lead.group(1))
    return letters, lead


def _leading_yes_no(text: str) -> bool | None:
    if _BOTH_YES_NO.match(text):
        return None
    m = _LEADING_YES_NO.match(text)
    if not m:
        return None
    return m.group(1) is not None


def _read_choice(text: str) -> tuple[bool | None, str, str]:
    """(answer, kind, reason) where kind is "letter", "yes_no", "contradictory" or "none"."""
    letters, lead = _chosen_letters(text)
    if len(letters) > 1:
        return None, "contradictory", "answer chooses both A and B"
    if letters:
        letter = letters.pop()
        value = letter == "A"
        if lead:
            word = _leading_yes_no(text[lead.end() :].lstrip(" \t.:,;-)"))
            if word is not None and word != value:
                return None, "contradictory", f"letter {letter} contradicts the yes/no that follows it"
        return value, "letter", f"chose {letter}"
    if _BOTH_YES_NO.match(text):
        return None, "contradictory", "answer says both yes and no"
    word = _leading_yes_no(text)
    if word is None:
        m = _PHRASE_YES_NO.search(text)
        if m:
            word = m.group(1) is not None
    if word is not None:
        return word, "yes_no", "answered " + ("yes" if word else "no")
    return None, "none", "no choice found"


def parse_voice_over_cot(text: str | None) -> CotAnswer:
    """Read a step-2 answer (A = voice-over present, B = none) into a :class:`CotAnswer`."""
    raw = (text or "").strip()
    if not raw:
        return CotAnswer(None, {}, "undecided", "empty answer")
    sections = cot_sections(raw)
    conclusion = sections.get("conclusion")
    if conclusion is None and not sections:
        headings = list(_CONCLUSION_HEADING.finditer(raw))
        if headings:
            heading = headings[-1]
            conclusion = raw[heading.end() :].strip()
    if conclusion is not None:
        body = conclusion.strip(_EDGE)
        value, kind, reason = _read_choice(body)
        if kind in ("letter", "yes_no"):
            return CotAnswer(value, sections, "conclusion", reason)
        if kind == "contradictory":
            return CotAnswer(None, sections, "undecided", f"conclusion: {reason}")
        if _NEGATED_VO.search(body):
            return CotAnswer(False, sections, "conclusion", "conclusion denies a voice-over")
        if _AFFIRMED_VO.search(body):
            return CotAnswer(True, sections, "conclusion", "conclusion states a voice-over")
        if body:
            return CotAnswer(None, sections, "undecided", "conclusion holds no answer")
    body = _ANY_TAG.sub(" ", raw).strip(_EDGE)
    value, kind, reason = _read_choice(body)
    if kind == "letter":
        return CotAnswer(value, sections, "bare_letter", reason)
    if kind == "yes_no":
        return CotAnswer(value, sections, "yes_no", reason)
    return CotAnswer(None, sections, "undecided", reason)


def parse_yes_no(text: str | None) -> bool | None:
    """A yes/no answer ("Yes.", "no", "A. Yes", "The answer is no"), or None when it is not one.

    Only a leading yes/no (after an optional option letter) or an explicit
    "the answer is ..." counts: a "no" inside a sentence ("there is no sound")
    says nothing about the question asked.
    """
    raw = (text or "").strip()
    if not raw:
        return None
    sections = cot_sections(raw)
    body = (sections.get("conclusion") or _ANY_TAG.sub(" ", raw)).strip(_EDGE)
    if _BOTH_YES_NO.match(body):
        return None
    lead = _LEADING_LETTER.match(body)
    if lead:
        rest = body[lead.end() :].lstrip(" \t.:,;-)")
        word = _leading_yes_no(rest)
        if word is not None:
            return word
    word = _leading_yes_no(body)
    if word is not None:
        return word
    answers = {m.group(1) is not None for m in _PHRASE_YES_NO.finditer(body)}
    return answers.pop() if len(answers) == 1 else None
