"""Frame speech probabilities → speech segments, for any frame-level voice activity detector.

Silero VAD has its own segmenter (in its wheel); TEN VAD ships only frame
probabilities, and the fused gate makes its own frame probabilities, so the
same rule is written here once: hysteresis (speech starts at ``threshold`` and
ends below ``threshold − 0.15``, as Silero's segmenter does), runs shorter than
``min_speech_s`` dropped, gaps shorter than ``min_silence_s`` bridged, each
segment widened by ``pad_s``. Written by hand because it is twenty lines of
arithmetic that no maintained library exposes for arbitrary hop sizes.
"""

from __future__ import annotations

import numpy as np

from deepsound.interfaces import SpeechReport

HYSTERESIS = 0.15


def check_segment_rule(threshold: float, min_speech_s: float, min_silence_s: float, pad_s: float) -> None:
    """The settings every frame-probability detector shares, checked once for all of them."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"speech threshold must lie in (0, 1), got {threshold}")
    if min_speech_s < 0 or min_silence_s < 0 or pad_s < 0:
        raise ValueError("speech/silence durations and padding must be non-negative")


def segments_from_probabilities(
    probs: np.ndarray,
    hop_s: float,
    *,
    threshold: float,
    min_speech_s: float,
    min_silence_s: float,
    pad_s: float,
    duration: float,
) -> list[tuple[float, float]]:
    """Speech segments in seconds (clipped to ``duration``) of frame probabilities at ``hop_s`` spacing."""
    off = max(threshold - HYSTERESIS, 0.01)
    runs: list[list[float]] = []
    start: float | None = None
    for i, p in enumerate(np.asarray(probs, dtype=np.float64)):
        if start is None and p >= threshold:
            start = i * hop_s
        elif start is not None and p < off:
            runs.append([start, i * hop_s])
            start = None
    if start is not None:
        runs.append([start, len(probs) * hop_s])
    merged: list[list[float]] = []
    for run in runs:
        if merged and run[0] - merged[-1][1] < min_silence_s:
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    segments = []
    for a, b in merged:
        if b - a < min_speech_s:
            continue
        a, b = max(a - pad_s, 0.0), min(b + pad_s, duration)
        if segments and a <= segments[-1][1]:
            segments[-1] = (segments[-1][0], round(b, 4))
        elif b > a:
            segments.append((round(a, 4), round(b, 4)))
    return segments


def report_from_segments(segments: list[tuple[float, float]], duration: float) -> SpeechReport:
    spoken = sum(b - a for a, b in segments)
    ratio = min(spoken / duration, 1.0) if duration > 0 else 0.0
    return SpeechReport(segments=segments, speech_ratio=float(ratio), duration=duration)
