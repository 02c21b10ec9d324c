"""Reading the step-2 chain of thought.

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

__all__ = ["SECTIONS", "CotAnswer", "cot_sections", "parse_voice_over_cot", "parse_yes_no"]

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
