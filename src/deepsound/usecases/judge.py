"""Step 2 alone, on a video as it is: does its own soundtrack hold a voice-over?

``deepsound judge`` and the page's Screen tab both call :func:`judge_file`; one dict per
file: the verdict, the judge that gave it, its evidence (speech segments and ratio; the
chain of thought when the MLLM was asked).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from deepsound.interfaces import Judge
from deepsound.steps.voice_over import judge_soundtrack


def judge_file(judge: Judge, video: Path) -> dict[str, Any]:
    """The verdict for ``video``'s own soundtrack; a video without audio has no voice-over."""
    from deepsound.media import probe, read_audio

    started = time.perf_counter()
    info = probe(video)
    audio = read_audio(video) if info.has_audio else None
    verdict = judge_soundtrack(judge, video if info.has_video else None, audio)
    return {
        "video": str(video),
        "has_voice_over": verdict.has_voice_over,
        "judge": verdict.judge,
        "evidence": verdict.evidence,
        "cot": verdict.cot_text,
        "mllm_calls": len(verdict.mllm_calls),
        "seconds": round(time.perf_counter() - started, 3),
    }
