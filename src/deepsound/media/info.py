"""What a media file holds: :func:`probe` and :class:`MediaInfo`.

Every step needs a few facts before it touches pixels or samples: how long the
video is (the generation window is clipped to it), whether there is a video
stream at all (audio-only files are rejected before any model loads), how the
pictures must be turned to be upright, and whether the frame rate is constant
(frame sampling by timestamp matters for variable-rate phone clips).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deepsound.errors import MediaError
from deepsound.media._open import media_errors, open_input

_VFR_SAMPLE_PACKETS = 300
"""How many packets to read for the frame-rate check when the container keeps no index."""


@dataclass(frozen=True)
class MediaInfo:
    """Facts about one media file.

    ``width``/``height`` are the size a viewer sees, i.e. after ``rotation``
    (degrees counter-clockwise, 0/90/180/270, that the stored pictures are
    turned by for display). ``duration`` is the video stream's length when there
    is one (the length that generated audio must match), else the audio's.
    ``fps`` is the average frame rate; ``variable_frame_rate`` tells whether
    frame gaps differ by more than timestamp rounding.
    """

    path: Path
    duration: float
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    rotation: int = 0
    fps: float = 0.0
    frame_rate: Fraction | None = None
    num_frames: int | None = None
    variable_frame_rate: bool = False
    video_codec: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None

    @property
    def codecs(self) -> tuple[str, ...]:
        """Codec names of the video and audio streams present, video first."""
        return tuple(c for c in (self.video_codec, self.audio_codec) if c)


def probe(path: Path | str) -> MediaInfo:
    """Read a file's streams and timing; raise :class:`MediaError` for anything unusable.

    Unusable means: missing, not media, corrupt or truncated, or holding no
    stream at all (which is what an MP4 written without a single frame becomes).
    A video stream from which no frame decodes is a zero-length video and is
    rejected too.
    """
    container = open_input(path)
    path = Path(path)
    with container, media_errors(path, "reading"):
        return probe_container(container, path)


def probe_container(container: av.container.InputContainer, path: Path) -> MediaInfo:
    """:func:`probe` on an already opened container (leaves it positioned anywhere)."""
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:
        raise MediaError(f"{path}: holds no audio or video stream (empty or zero-length media)")

    check_complete(container, path)
    info: dict = {
        "path": path,
        "has_video": video is not None,
        "has_audio": audio is not None,
    }
    if audio is not None:
        info["audio_codec"] = audio.codec_context.codec.canonical_name
        info["sample_rate"] = int(audio.rate or audio.codec_context.sample_rate)
        info["channels"] = int(audio.channels or audio.codec_context.channels)

    if video is not None:
        rate = video.average_rate or video.guessed_rate or video.base_rate
        first = next(iter(container.decode(video)), None)
        if first is None:
            raise MediaError(f"{path}: video stream holds no frames (zero-length video)")
        timestamps = _video_timestamps(container, video)
        rotation = frame_rotation(first, video)
        stored_w, stored_h = first.width, first.height
        width, height = (stored_h, stored_w) if rotation in (90, 270) else (stored_w, stored_h)
        info.update(
            video_codec=video.codec_context.codec.canonical_name,
            width=width,
            height=height,
            rotation=rotation,
            frame_rate=Fraction(rate) if rate else None,
            fps=float(rate) if rate else 0.0,
            num_frames=_frame_count(video),
            variable_frame_rate=_is_variable(timestamps),
        )
        info["duration"] = _stream_seconds(video, timestamps, rate) or _container_seconds(container)
    else:
        info["duration"] = _stream_seconds(audio, None, None) or _container_seconds(container)
    return MediaInfo(**info)


def check_complete(container: av.container.InputContainer, path: Path) -> None:
    """Reject files cut short after their index (MP4 with the index up front, a partial download).

    FFmpeg would decode such a file up to the cut without complaint, and a
    3 s generation window would silently become 1 s. The index says where
    every frame lies, so a file shorter than that is known to be truncated.
    """
    try:
        size = path.stat().st_size
    except OSError:
        return
    needed = 0
    for stream in container.streams:
        entries = stream.index_entries
        if entries is not None and len(entries):
            needed = max(needed, max(e.pos + e.size for e in entries))
    if needed > size:
        raise MediaError(f"{path}: is truncated ({size} of {needed} bytes present)")


def frame_rotation(frame: av.VideoFrame, stream: av.video.stream.VideoStream | None = None) -> int:
    """Counter-clockwise display rotation of ``frame`` in {0, 90, 180, 270}.

    The display matrix travels with decoded frames; files written by old tools
    carry only a ``rotate`` tag, which counts clockwise, so it is negated.
    """
    degrees = 0.0
    try:
        degrees = float(frame.rotation or 0)
    except (AttributeError, ValueError, TypeError):
        degrees = 0.0
    if not degrees and stream is not None:
        tag = stream.metadata.get("rotate")
        if tag:
            try:
                degrees = -float(tag)
            except ValueError:
                degrees = 0.0
    return int(round(degrees / 90.0)) % 4 * 90


def _video_timestamps(container: av.container.InputContainer, video) -> np.ndarray:
    """Frame timestamps in stream ticks, from the index when the container has one.

    MP4/MOV keep an entry per frame, so nothing is read; otherwise the next
    packets are demuxed (timestamps only, nothing decoded).
    """
    entries = video.index_entries
    stamps: list[int] = []
    if entries is not None and len(entries) >= 2:
        stamps = [e.timestamp for e in entries if not e.is_discard]
    frames = int(video.frames or 0)
    if len(stamps) < 2 or (frames and len(stamps) < frames // 2):
        stamps = []
        for packet in container.demux(video):
            if packet.pts is not None:
                stamps.append(packet.pts)
            if len(stamps) >= _VFR_SAMPLE_PACKETS:
                break
    return np.sort(np.asarray(stamps, dtype=np.int64))


def _frame_count(video) -> int | None:
    """Frames a player shows: MP4 edit lists can hide lead-in frames that ``frames`` still counts."""
    entries = video.index_entries
    if entries is not None and video.frames and len(entries) == video.frames:
        return sum(1 for e in entries if not e.is_discard) or None
    return int(video.frames) or None


def _is_variable(stamps: np.ndarray) -> bool:
    if stamps.size < 3:
        return False
    gaps = np.diff(stamps)
    gaps = gaps[gaps > 0]
    if gaps.size < 2:
        return False
    # Timestamps are rounded to the time base (33/34 ms at 1/1000): allow two ticks and 2 %.
    spread = int(gaps.max() - gaps.min())
    return spread > max(2, 0.02 * float(np.median(gaps)))


def _stream_seconds(stream, stamps: np.ndarray | None, rate) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if stamps is not None and stamps.size and stream.time_base:
        last = stamps[-1] - stamps[0]
        period = 1 / float(rate) if rate else 0.0
        return float(last * stream.time_base) + period
    return 0.0


def _container_seconds(container: av.container.InputContainer) -> float:
    return container.duration / 1_000_000 if container.duration else 0.0
