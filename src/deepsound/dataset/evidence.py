"""What a clip's generated audio holds, measured, and the label it earns.

The paper built its CoT-V2A set without human annotation. Here a label comes
only from three measurements, all kept beside the sample so that any label can
be audited and re-derived with another rule:

* speech in the **generated** audio (Silero VAD): no voice, no voice-over;
* speech in the video's **original** soundtrack over the same stretch: a voice
  the generator produced although the scene itself holds none was laid over the
  pictures, i.e. a voice-over; a voice where the scene holds speech too is the
  scene's own (on-screen) speech (the rule is
  :func:`deepsound.steps.voice_over.voice_over_from_speech`, the evaluation's too);
* the separator's **vocal share** of the generated audio's energy (when a
  separator is configured): a second, independent opinion. It never changes the
  label; it marks whether it agrees with the VAD, so that disagreeing samples
  can be dropped (``drop_inconsistent``) or inspected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from deepsound.interfaces import SpeechReport
from deepsound.steps.voice_over import speech_heard, voice_over_from_speech

VOICE_OVER = "A"  # the paper's options: "A. Yes" (voice-over present), "B. No"
NO_VOICE_OVER = "B"

# why a label was given (kept in the manifest and counted in the summary)
REASON_NO_SPEECH = "no_speech_generated"
REASON_VOICE_OVER = "speech_absent_from_original"
REASON_ON_SCREEN = "speech_in_original"


@dataclass
class SpeechMeasure:
    """One speech-detector reading, rounded for the manifest."""

    has_speech: bool
    speech_seconds: float
    speech_ratio: float
    segments: list[list[float]]
    duration: float

    @classmethod
    def from_report(cls, report: SpeechReport) -> SpeechMeasure:
        return cls(
            has_speech=report.has_speech,
            speech_seconds=round(sum(b - a for a, b in report.segments), 3),
            speech_ratio=round(float(report.speech_ratio), 4),
            segments=[[round(a, 3), round(b, 3)] for a, b in report.segments],
            duration=round(float(report.duration), 3),
        )


@dataclass
class LabelRules:
    """Thresholds of the labelling rule (the defaults follow the ``speech`` judge: any speech counts)."""

    min_speech_seconds: float = 0.0  # shorter total speech counts as none
    vocal_share_speech: float = 0.1  # a vocal share at or above this agrees with "speech heard"
    drop_inconsistent: bool = False

    def heard(self, measure: SpeechMeasure) -> bool:
        return speech_heard(
            measure.has_speech,
            measure.speech_seconds,
            measure.speech_ratio,
            min_seconds=self.min_speech_seconds,
        )


@dataclass
class ClipEvidence:
    """Everything measured about one clip and the label derived from it."""

    generated: SpeechMeasure
    original: SpeechMeasure
    vocal_share: float | None  # None: no separator configured
    label: str
    reason: str
    consistent: bool | None  # separator agrees with the VAD (None: not measured)
    detector: str
    separator: str | None

    @property
    def has_voice_over(self) -> bool:
        return self.label == VOICE_OVER

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipEvidence:
        values = dict(data)
        values["generated"] = SpeechMeasure(**values["generated"])
        values["original"] = SpeechMeasure(**values["original"])
        return cls(**values)


def label_clip(
    generated: SpeechReport,
    original: SpeechReport,
    *,
    vocal_share: float | None = None,
    rules: LabelRules | None = None,
    detector: str = "silero-vad",
    separator: str | None = None,
) -> ClipEvidence:
    """The label the measurements give (see the module docstring for the rule)."""
    rules = rules or LabelRules()
    gen, orig = SpeechMeasure.from_report(generated), SpeechMeasure.from_report(original)
    heard, heard_in_original = rules.heard(gen), rules.heard(orig)
    if voice_over_from_speech(heard, heard_in_original):
        label, reason = VOICE_OVER, REASON_VOICE_OVER
    else:
        label, reason = NO_VOICE_OVER, (REASON_ON_SCREEN if heard else REASON_NO_SPEECH)
    consistent = None
    if vocal_share is not None:
        consistent = (vocal_share >= rules.vocal_share_speech) == heard
        vocal_share = round(float(vocal_share), 5)
    return ClipEvidence(gen, orig, vocal_share, label, reason, consistent, detector, separator)
