"""Step 4 asked to the MLLM ("Is the audio silent?"), as the paper's figure draws it.

The released pipeline answers step 4 with a signal rule (RMS below -50 dB on
more than 90 % of frames); that rule stays the default. This detector asks the
audio-visual LLM instead, with the video when there is one, and still measures
the rule's numbers as evidence. An answer that is neither yes nor no falls back
to the rule, so step 4 always decides.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepsound.audio import Audio
from deepsound.interfaces import Mllm, SilenceReport
from deepsound.steps.prompts import SILENCE_QUESTION, SILENCE_SYSTEM_PROMPT
from deepsound.steps.silence import SILENCE_THRESHOLD_DB, SILENT_RATIO, RmsSilenceDetector, SilenceSettings
from deepsound.steps.voice_over import LazyMllm


class MllmSilenceDetector:
    """``SilenceDetector`` that asks the MLLM; the RMS rule decides only when the answer cannot be read."""

    name = "mllm"

    def __init__(
        self,
        mllm: Mllm | Callable[[], Mllm],
        *,
        threshold_db: float = SILENCE_THRESHOLD_DB,
        silent_ratio: float = SILENT_RATIO,
    ) -> None:
        self.mllm = LazyMllm(mllm)
        self.rule = RmsSilenceDetector(threshold_db=threshold_db, silent_ratio=silent_ratio)

    @classmethod
    def from_settings(cls, settings: SilenceSettings, mllm: Mllm | Callable[[], Mllm]) -> MllmSilenceDetector:
        return cls(mllm, threshold_db=settings.threshold_db, silent_ratio=settings.ratio)

    def detect(self, audio: Audio, video: Path | None = None) -> SilenceReport:
        from deepsound.steps.cot import parse_yes_no

        rule = self.rule.detect(audio)
        mllm = self.mllm.get()
        answer = mllm.ask(
            SILENCE_QUESTION, video=video, audio=audio, system=SILENCE_SYSTEM_PROMPT, step="step4"
        )
        said = parse_yes_no(answer.text)
        answer.record["verdict"] = said
        evidence: dict[str, Any] = {
            "mllm_model": mllm.model_id,
            "mllm_answer": answer.text,
            "mllm_verdict": said,
            "rule_is_silent": rule.is_silent,
            "rule": rule.evidence,
        }
        if said is None:
            evidence["decided_by"] = "rule_fallback"
            is_silent = rule.is_silent
        else:
            evidence["decided_by"] = "mllm"
            is_silent = said
        return SilenceReport(
            is_silent=bool(is_silent),
            silent_frame_ratio=rule.silent_frame_ratio,
            evidence=evidence,
            mllm_calls=[answer.record],
        )
