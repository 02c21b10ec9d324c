"""Step 1: generate the soundtrack — in one pass, or in overlapping cross-faded windows.

MMAudio was trained on 8 s clips. A 40 s video can be generated in one pass
(``--whole``), but quality drifts far past the training length; the usual
remedy is what this module does: generate overlapping windows (each with its
own video stretch and seed ``seed + i``), then cross-fade the overlaps with
equal-power curves so that neither a gap nor a loudness bump marks a seam.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from deepsound.audio import Audio
from deepsound.config import NEGATIVE_PROMPT_FALLBACK, PipelineConfig, RunOptions
from deepsound.errors import ConfigError
from deepsound.interfaces import Generation, GenerationRequest, Generator


def window_starts(duration: float, window: float, overlap: float) -> list[float]:
    """Start times covering ``[0, duration]`` with windows of ``window`` s overlapping by ``overlap`` s."""
    if not 0 <= overlap < window:
        raise ConfigError(f"window overlap must be in [0, window), got {overlap} for a {window} s window")
    if duration <= window:
        return [0.0]
    hop = window - overlap
    count = math.ceil((duration - window) / hop) + 1
    starts = [i * hop for i in range(count)]
    starts[-1] = max(0.0, duration - window)  # the last window ends exactly at the end
    return starts


def duration_range(config: PipelineConfig) -> tuple[float, float | None]:
    """Shortest and longest audio (None: no limit) the configured generator makes in one pass,
    known before it loads: its registry entry declares them."""
    from deepsound.registry import find

    found = find("generator", config.generator.name)
    return found.duration if found is not None else (0.0, None)


def as_generation(result: Generation | Audio) -> Generation:
    """A generator may return bare audio (a user's own component); it then has no evidence."""
    return result if isinstance(result, Generation) else Generation(result, {})


def request_for(video: Path | None, options: RunOptions, negative_prompt: str) -> GenerationRequest:
    return GenerationRequest(
        video=video,
        prompt=options.prompt,
        negative_prompt=negative_prompt,
        duration=float(options.duration or 0.0),
        seed=options.seed,
        num_steps=options.num_steps,
        cfg_strength=options.cfg_strength,
    )


def generate(
    generator: Generator, request: GenerationRequest, window: float | None, overlap: float
) -> Generation:
    """The step-1 audio for ``request``, windowed when it is longer than ``window`` seconds."""
    if window is not None and request.duration > window:
        return generate_windowed(generator, request, window, overlap)
    return as_generation(generator.generate(request))


def fallback_negative_prompt(user_negative: str) -> str:
    """The `neg` fallback steers away from voice; a user's own negative prompt is kept beside it."""
    if user_negative.strip():
        return f"{user_negative.strip()}, {NEGATIVE_PROMPT_FALLBACK}"
    return NEGATIVE_PROMPT_FALLBACK


def generate_windowed(
    generator: Generator, request: GenerationRequest, window: float, overlap: float = 1.0
) -> Generation:
    """``request.duration`` seconds of audio from consecutive windows of at most ``window`` s.

    The evidence lists every window (start, length, seed and the generator's own evidence,
    stage timings included) and sums the stage timings over all windows.
    """
    starts = window_starts(request.duration, window, overlap)
    if len(starts) == 1:
        return as_generation(generator.generate(request))
    rate = generator.sample_rate
    total = int(round(request.duration * rate))
    out: np.ndarray | None = None
    covered = 0  # samples of `out` already final up to here
    windows: list[dict[str, Any]] = []
    for index, start in enumerate(starts):
        length = min(window, request.duration - start)
        seed = request.seed + index
        made = as_generation(
            generator.generate(
                dataclasses.replace(request, start=request.start + start, duration=length, seed=seed)
            )
        )
        windows.append(
            {"start": round(start, 4), "duration": round(length, 4), "seed": seed, **made.evidence}
        )
        piece = made.audio
        if piece.sample_rate != rate:
            piece = piece.resample(rate)
        wave = piece.fit_length(int(round(length * rate))).waveform
        offset = int(round(start * rate))
        if out is None:
            out = np.zeros((wave.shape[0], total), np.float32)
        fade = max(0, min(covered - offset, wave.shape[1]))
        if fade:
            t = np.linspace(0.0, 1.0, fade, dtype=np.float32)
            fade_in, fade_out = np.sin(t * np.pi / 2), np.cos(t * np.pi / 2)
            out[:, offset : offset + fade] = (
                out[:, offset : offset + fade] * fade_out + wave[:, :fade] * fade_in
            )
        end = min(offset + wave.shape[1], total)
        out[:, offset + fade : end] = wave[:, fade : end - offset]
        covered = end
    if out is None:  # window_starts always returns at least one start
        raise ConfigError(f"nothing to generate for {request.duration} s")
    evidence: dict[str, Any] = {"windows": windows}
    totals: dict[str, float] = {}
    for w in windows:
        for stage, seconds in w.get("stage_seconds", {}).items():
            totals[stage] = round(totals.get(stage, 0.0) + float(seconds), 4)
    if totals:
        evidence["stage_seconds"] = totals
    return Generation(Audio(out, rate), evidence)
