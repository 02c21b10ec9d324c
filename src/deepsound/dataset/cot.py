"""The answers a sample teaches: the plan (step 0), the four-part chain of thought and the bare letter (step 2).

The chain of thought is written from the measured evidence only. What was not
measured is not said: without a captioner the caption describes what was heard
(the speech detector's reading, the separator's share) and says nothing about
the pictures; with one, the MLLM's own description of the video is quoted as
such. The reasoning names the measurement that decided the label, phrased in
what the judging model can perceive (a voice in the audio; speech, or none, in
the scene's own recorded sound). The conclusion is the paper's option text,
``A. Yes`` or ``B. No``, which :func:`deepsound.steps.cot.parse_voice_over_cot`
reads back.
"""

from __future__ import annotations

from deepsound.dataset.evidence import (
    REASON_NO_SPEECH,
    REASON_ON_SCREEN,
    REASON_VOICE_OVER,
    VOICE_OVER,
    ClipEvidence,
    SpeechMeasure,
)
from deepsound.interfaces import CANONICAL_PLAN_TEXT

OPTION_TEXT = {"A": "A. Yes", "B": "B. No"}

SUMMARY = (
    "I will describe what is seen and heard, check whether a human voice is heard in the audio, and "
    "decide whether that voice belongs to the scene or was laid over the pictures as a voice-over."
)


def plan_answer() -> str:
    """Step 0's target: the paper's four steps, as the canonical plan text."""
    return CANONICAL_PLAN_TEXT


def qa_answer(evidence: ClipEvidence) -> str:
    """The QA variant's target: the bare letter."""
    return evidence.label


def _span(segments: list[list[float]]) -> str:
    shown = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in segments[:3])
    more = f" and {len(segments) - 3} more" if len(segments) > 3 else ""
    return f" ({shown}{more})"


def _heard(measure: SpeechMeasure) -> str:
    if not measure.has_speech:
        return f"No human speech is heard in the {measure.duration:.1f} s of audio."
    return (
        f"A human voice is heard for {measure.speech_seconds:.1f} s of the {measure.duration:.1f} s of audio "
        f"({100 * measure.speech_ratio:.0f}%){_span(measure.segments)}."
    )


def caption_text(evidence: ClipEvidence, video_caption: str | None = None) -> str:
    """What is seen (only when a captioner described it) and what is heard (always measured)."""
    parts = []
    if video_caption and video_caption.strip():
        parts.append(f"The video shows: {' '.join(video_caption.split())}")
    parts.append(_heard(evidence.generated))
    if evidence.vocal_share is not None:
        parts.append(
            f"Separating the voice from the rest puts {100 * evidence.vocal_share:.0f}% of the audio's "
            "energy in the vocal part."
        )
    return " ".join(parts)


def reasoning_text(evidence: ClipEvidence) -> str:
    if evidence.reason == REASON_NO_SPEECH:
        return "No human voice is heard in the audio, so there is nothing that could be a voice-over."
    if evidence.reason == REASON_ON_SCREEN:
        return (
            "A human voice is heard, and the scene's own recorded sound holds speech over the same stretch, "
            "so the voice belongs to the scene (on-screen speech); it is not a voice-over."
        )
    if evidence.reason == REASON_VOICE_OVER:
        return (
            "A human voice is heard, but the scene's own recorded sound holds no speech over the same "
            "stretch, so the voice does not come from anything in the scene: it is speech laid over the "
            "pictures, a voice-over."
        )
    raise ValueError(f"no reasoning for label reason {evidence.reason!r}")


def cot_answer(evidence: ClipEvidence, video_caption: str | None = None) -> str:
    """The step-2 target in the paper's four tags, ending in the chosen option."""
    conclusion = OPTION_TEXT[VOICE_OVER if evidence.has_voice_over else "B"]
    return (
        f"<SUMMARY>{SUMMARY}</SUMMARY>\n"
        f"<CAPTION>{caption_text(evidence, video_caption)}</CAPTION>\n"
        f"<REASONING>{reasoning_text(evidence)}</REASONING>\n"
        f"<CONCLUSION>{conclusion}</CONCLUSION>"
    )
