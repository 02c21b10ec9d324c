"""Soundtracks longer than the generator's window, in overlapping cross-faded pieces.

MMAudio was trained on 8 s clips. A 40 s video can be generated in one pass
(``--whole``), but quality drifts far past the training length; the usual
remedy is what this module does: generate overlapping windows (each with its
own video stretch and seed ``seed + i``), then cross-fade the overlaps with
equal-power curves so that neither a gap nor a loudness bump marks a seam.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from deepsound.audio import Audio
from deepsound.errors import ConfigError
from deepsound.interfaces import GenerationRequest, Generator


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


def generate_windowed(
    generator: Generator, request: GenerationRequest, window: float, overlap: float = 1.0
) -> Audio:
    """``request.duration`` seconds of audio from consecutive windows of at most ``window`` s."""
    starts = window_starts(request.duration, window, overlap)
    if len(starts) == 1:
        return generator.generate(request)
    rate = generator.sample_rate
    total = int(round(request.duration * rate))
    out: np.ndarray | None = None
    covered = 0  # samples of `out` already final up to here
    for index, start in enumerate(starts):
        length = min(window, request.duration - start)
        piece = generator.generate(
            dataclasses.replace(
                request, start=request.start + start, duration=length, seed=request.seed + index
            )
        )
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
    assert out is not None
    return Audio(out, rate)
