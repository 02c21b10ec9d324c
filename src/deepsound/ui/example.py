"""The page's bundled example: a short synthetic clip, drawn on first use.

A clip of real footage would need a licence to ship; a few seconds of a ball
bouncing on a floor are drawn here instead (PyAV, no ffmpeg program), so a
visitor can try the page before finding a video of their own. The clip is
silent, which is what the method is for.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deepsound.files import atomic_output

EXAMPLE_NAME = "bouncing_ball.mp4"


def write_example(
    folder: Path, seconds: float = 4.0, fps: int = 25, size: tuple[int, int] = (320, 240)
) -> Path:
    """Write (once) and return the example clip in ``folder``."""
    path = Path(folder) / EXAMPLE_NAME
    if path.exists():
        return path
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    floor = int(height * 0.8)
    with atomic_output(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("h264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        stream.time_base = Fraction(1, fps)
        radius = height // 10
        for i in range(int(seconds * fps)):
            t = i / fps
            img = np.zeros((height, width, 3), np.uint8)
            img[:floor] = (150, 190, 230)  # sky
            img[floor:] = (110, 80, 50)  # wooden floor
            bounce = abs(np.sin(np.pi * t / 0.8))  # lands every 0.8 s
            cx = int(radius + (width - 2 * radius) * ((t / seconds) % 1.0))
            cy = int(floor - radius - bounce * (floor - 3 * radius))
            img[(x - cx) ** 2 + (y - cy) ** 2 <= radius**2] = (220, 60, 40)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
