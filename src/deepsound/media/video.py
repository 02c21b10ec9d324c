"""Video frames for MMAudio: two frame streams from one decoding pass.

MMAudio conditions on CLIP features at 8 fps (384x384 pictures in [0, 1]) and
Synchformer features at 25 fps (224x224 centre crops in [-1, 1]). The
checkpoints were trained on frames sampled one particular way, so this module
reproduces that sampling exactly instead of "resampling the video" in some
other reasonable way:

- Target times are ``0, 1/fps, 2/fps, ...`` accumulated by repeated float
  addition of ``1/fps``. Each target takes the *first decoded frame whose
  timestamp is at or after it* (not the nearest frame): a 30 fps source sampled
  at 25 fps takes frames 0, 2, 3, 4, 5, 7, ... and a 23.976 fps source repeats
  a frame now and then.
- Frames are kept while their timestamp is at most ``start + duration``.
- If a stream yields fewer than ``duration * fps`` frames, the duration is
  shortened to what it holds (first by the 8 fps stream, then the 25 fps one),
  and both streams are cut to ``int(fps * duration)`` frames.
- Pictures go through torchvision's v2 bicubic (antialiased) resize on uint8,
  then to float. CLIP pictures are squashed to 384x384 (aspect ratio not
  kept); sync pictures get their shorter side resized to 224, a 224x224 centre
  crop, and ``(x - 0.5) / 0.5``.

Deliberate differences from the official loader, none of which changes its
output on an ordinary upright MP4 that starts at time zero:

- Rotation metadata is honoured: pictures are turned upright as a player
  shows them (the official loader feeds phone clips in sideways).
- Timestamps count from the container's start time, so MPEG-TS and other
  files whose clock does not start at zero are not frozen on their first frame.
- ``start`` > 0 seeks and counts the targets from ``start`` (the official code
  always reads from zero).
- Decoding stops at the first frame past the window instead of decoding the
  rest of the file, and the full-size pictures are not kept: only the two
  resized streams are, which bounds memory for long or 4K inputs. Pictures
  are decoded on a second thread while the previous ones are resized.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue

import av
import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from deepsound.errors import MediaError
from deepsound.media._open import media_errors, open_input
from deepsound.media.info import MediaInfo, probe

CLIP_FPS = 8.0
CLIP_SIZE = 384
SYNC_FPS = 25.0
SYNC_SIZE = 224

_CHUNK = 16
"""Frames resized together: batches the resize without holding full-size pictures of a whole clip."""


@dataclass(frozen=True)
class DecodedVideo:
    """The frame streams MMAudio conditions on, and the window they cover.

    ``clip_frames`` is ``(T_clip, 3, 384, 384)`` float32 in [0, 1] at 8 fps;
    ``sync_frames`` is ``(T_sync, 3, 224, 224)`` float32 in [-1, 1] at 25 fps.
    ``duration`` is the effective length in seconds: the requested one, or
    less when the video ends first (generated audio must use this one).
    """

    clip_frames: torch.Tensor
    sync_frames: torch.Tensor
    duration: float
    start: float
    info: MediaInfo


def clip_transform(frames: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` uint8 -> ``(N, 3, 384, 384)`` float32 in [0, 1]."""
    resized = F.resize(
        frames, [CLIP_SIZE, CLIP_SIZE], interpolation=InterpolationMode.BICUBIC, antialias=True
    )
    return F.to_dtype(resized, torch.float32, scale=True)


def sync_transform(frames: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` uint8 -> ``(N, 3, 224, 224)`` float32 in [-1, 1]."""
    resized = F.resize(frames, [SYNC_SIZE], interpolation=InterpolationMode.BICUBIC, antialias=True)
    cropped = F.center_crop(resized, [SYNC_SIZE, SYNC_SIZE])
    scaled = F.to_dtype(cropped, torch.float32, scale=True)
    return F.normalize(scaled, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], inplace=True)


class _TargetClock:
    """Target timestamps ``k / fps``, accumulated the way the reference does (float sums)."""

    def __init__(self, fps: float) -> None:
        self.step = 1 / fps
        self.next = 0.0

    def due(self, time: float) -> int:
        """How many targets the frame at ``time`` fills (0 when the next target is later)."""
        count = 0
        while time >= self.next:
            count += 1
            self.next += self.step
        return count


class _FrameStream:
    """Collects the frames one rate picks, resizing them in chunks as they arrive.

    Results go straight into one preallocated tensor, so a clip never exists
    both as a list of chunks and as their concatenation.
    """

    def __init__(self, fps: float, transform, size: int, expected: int) -> None:
        self.clock = _TargetClock(fps)
        self.transform = transform
        self.pending: list[np.ndarray] = []
        self.repeats: list[int] = []
        self.out = torch.empty((max(expected, 1), 3, size, size), dtype=torch.float32)
        self.count = 0

    def add(self, picture: np.ndarray, repeats: int) -> None:
        self.pending.append(picture)
        self.repeats.append(repeats)
        if len(self.pending) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        # NHWC memory viewed as NCHW: the layout torch.from_numpy(...).permute gives, so the
        # resize kernel runs on the same channels-last data as the reference and matches bit for bit.
        batch = torch.from_numpy(np.stack(self.pending)).permute(0, 3, 1, 2)
        resized = self.transform(batch)
        if any(r != 1 for r in self.repeats):
            resized = resized[
                torch.repeat_interleave(torch.arange(len(self.repeats)), torch.tensor(self.repeats))
            ]
        end = self.count + resized.shape[0]
        if end > self.out.shape[0]:
            grown = torch.empty((max(end, 2 * self.out.shape[0]), *self.out.shape[1:]), dtype=self.out.dtype)
            grown[: self.count] = self.out[: self.count]
            self.out = grown
        self.out[self.count : end] = resized
        self.count = end
        self.pending, self.repeats = [], []

    def frames(self, keep: int) -> torch.Tensor:
        self._flush()
        kept = self.out[: min(keep, self.count)]
        # Do not pin a much larger buffer behind a short result.
        return kept.clone() if kept.shape[0] * 2 < self.out.shape[0] else kept

    @property
    def total(self) -> int:
        return self.count + sum(self.repeats)


def decode_video(path: Path | str, duration: float, start: float = 0.0) -> DecodedVideo:
    """Decode ``duration`` seconds from ``start`` into MMAudio's CLIP and sync frame streams.

    The file is decoded once; each decoded picture is converted to RGB only if
    one of the two streams takes it. Raises :class:`MediaError` for unreadable
    files, files without video, and windows that hold no frame.
    """
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    if start < 0:
        raise ValueError(f"start must not be negative, got {start}")
    path = Path(path)
    info = probe(path)
    if not info.has_video:
        raise MediaError(f"{path}: has no video stream (audio only?); a video is needed here")
    # A fresh demuxer rather than a seek back after probing: MP4 edit lists
    # (discarded lead-in frames) are applied exactly as on first open.
    container = open_input(path)
    with container, media_errors(path, "decoding video"):
        clip, sync = _decode_streams(container, info, float(duration), float(start))

    n_clip, n_sync = clip.total, sync.total
    if n_clip == 0 or n_sync == 0:
        raise MediaError(
            f"{path}: no video frames from {start:.2f} s on (the video is {info.duration:.2f} s)"
        )
    effective = float(duration)
    if n_clip / CLIP_FPS < effective:
        effective = n_clip / CLIP_FPS
    if n_sync / SYNC_FPS < effective:
        effective = n_sync / SYNC_FPS
    clip_frames = clip.frames(int(CLIP_FPS * effective))
    sync_frames = sync.frames(int(SYNC_FPS * effective))
    return DecodedVideo(clip_frames, sync_frames, effective, float(start), info)


def _decode_streams(
    container: av.container.InputContainer, info: MediaInfo, duration: float, start: float
) -> tuple[_FrameStream, _FrameStream]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    origin = container.start_time / 1_000_000 if container.start_time is not None else 0.0
    begin, end = origin + start, origin + start + duration
    if start > 0:  # to the key frame at or before the window; earlier frames are skipped below
        container.seek(int(begin / stream.time_base), stream=stream)
    quarter_turns = info.rotation // 90

    # Room for the frames the window can hold; a header that understates the length only costs a regrow.
    seconds = min(duration, max(info.duration - start, 0.0) + 1.0)
    clip = _FrameStream(CLIP_FPS, clip_transform, CLIP_SIZE, int(seconds * CLIP_FPS) + 2)
    sync = _FrameStream(SYNC_FPS, sync_transform, SYNC_SIZE, int(seconds * SYNC_FPS) + 2)
    period = 1 / info.fps if info.fps else 0.04
    queue: Queue = Queue(maxsize=8)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        """Decode on a second thread: FFmpeg and torch both release the GIL, so decoding
        the next pictures overlaps with resizing the previous ones."""
        try:
            last_time: float | None = None
            for packet in container.demux(stream):
                for frame in packet.decode():
                    time = frame.time
                    if time is None:  # no timestamp: assume it follows the previous frame
                        time = (last_time + period) if last_time is not None else begin
                    last_time = time
                    if time < begin:
                        continue
                    if time > end:
                        return
                    relative = time - begin
                    n_clip, n_sync = clip.clock.due(relative), sync.clock.due(relative)
                    if n_clip or n_sync:
                        picture = frame.to_ndarray(format="rgb24")
                        if quarter_turns:
                            picture = np.ascontiguousarray(np.rot90(picture, quarter_turns))
                        if not hand_over((picture, n_clip, n_sync)):
                            return
        except BaseException as exc:  # raised again on the calling thread
            hand_over(exc)
        finally:
            hand_over(None)

    worker = threading.Thread(target=produce, name="deepsound-decode", daemon=True)
    worker.start()
    try:
        while (item := queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            picture, n_clip, n_sync = item
            if n_clip:
                clip.add(picture, n_clip)
            if n_sync:
                sync.add(picture, n_sync)
    finally:
        stop.set()
        worker.join()
    return clip, sync
