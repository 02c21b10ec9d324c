"""Frames for the Qwen-Omni processor: sampled at its rate from the frames the file really holds.

PyAV decodes; frames are turned upright (phone rotation) and sampled at ``fps`` from ``start``
for at most ``max_frames``, as arrays the processor takes directly (no ffmpeg, no temp file).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from deepsound.errors import MediaError


@dataclass
class Frames:
    """Frames sampled from a video: ``(T, H, W, 3)`` uint8 RGB at ``fps`` from ``start``."""

    frames: np.ndarray
    fps: float
    start: float
    duration: float
    source_size: tuple[int, int]  # (height, width) of the video stream


def sample_frames(
    path: Path,
    *,
    fps: float = 2.0,
    start: float = 0.0,
    duration: float | None = None,
    max_frames: int = 64,
    max_pixels: int = 640 * 360,
) -> Frames:
    """Decode the frames an MLLM sees: ``fps`` frames per second (fewer when ``max_frames`` binds).

    Frames keep their aspect ratio (the processor resizes them onto its patch
    grid within its own pixel budget); they are scaled down at decode time
    to at most ``max_pixels`` so that a 1080p clip does not cost 1080p memory.
    The count is made even because the vision encoder groups frames by two.
    """
    from deepsound.media._open import media_errors, open_input

    path = Path(path)
    container = open_input(path)
    with container, media_errors(path, "decoding frames"):
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        height, width = stream.codec_context.height, stream.codec_context.width
        length = _stream_seconds(stream, container)
        end = length
        if duration is not None:
            end = start + duration if length <= 0 else min(length, start + duration)
        span = max(end - start, 1e-3)
        count = max(1, min(max_frames, int(np.floor(span * fps + 1e-6)) or 1))
        targets = start + np.arange(count) * (span / count)
        scale = min(1.0, float(np.sqrt(max_pixels / max(1, height * width))))
        out_w, out_h = max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)

        picked: list[np.ndarray] = []
        last = None
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            last = frame
            while len(picked) < count and frame.time + 1e-6 >= targets[len(picked)]:
                picked.append(_upright(frame, stream, out_w, out_h))
            if len(picked) == count:
                break
        if last is None:
            raise MediaError(f"{path}: no decodable video frame")
        while len(picked) < count:  # the stream ended before the last target: hold the last frame
            picked.append(_upright(last, stream, out_w, out_h))
    if len(picked) % 2:
        picked.append(picked[-1])
    effective_fps = count / span
    return Frames(np.stack(picked), effective_fps, start, span, (height, width))


def _upright(frame: Any, stream: Any, width: int, height: int) -> np.ndarray:
    """RGB pixels as a viewer sees them: phone clips store pictures turned and tag the turn."""
    from deepsound.media.info import frame_rotation

    pixels = frame.to_ndarray(format="rgb24", width=width, height=height)
    turns = frame_rotation(frame, stream) // 90
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def _stream_seconds(stream: Any, container: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * Fraction(stream.time_base))
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0
