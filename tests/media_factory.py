"""Synthesize small test clips and audio files with PyAV (no ffmpeg binary needed).

Import it from any test module under ``tests/`` with::

    from media_factory import make_video, make_audio_file, tone

This works because ``tests/`` has a ``conftest.py`` and no ``__init__.py``:
pytest's default ("prepend") import mode puts the folder of each rootless
``conftest.py`` and test module on ``sys.path``, so sibling helper modules
import by their bare name, from ``tests/`` and from its sub-folders alike.

The pictures are moving test patterns, so that a decoder that picks the wrong
frame, flips or rotates a picture, or mixes up its colours produces a visibly
different tensor. Each frame also carries its own index as a row of black and
white blocks along the top edge (:func:`read_frame_index` reads it back), which
lets tests check *which* source frame was chosen for a timestamp even after
lossy compression and resizing.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deepsound.audio import Audio

INDEX_BITS = 10
"""Frame indices up to 1023 fit in the block code along the top edge."""

_INDEX_ROWS = 0.12
"""Fraction of the picture height used by the index code strip."""


def tone(
    duration: float = 1.0,
    sample_rate: int = 16000,
    frequency: float = 440.0,
    channels: int = 1,
    amplitude: float = 0.5,
) -> Audio:
    """A sine tone; stereo channels get slightly different frequencies so they can be told apart."""
    t = np.arange(int(round(duration * sample_rate)), dtype=np.float64) / sample_rate
    rows = [amplitude * np.sin(2 * np.pi * (frequency * (1 + 0.25 * c)) * t) for c in range(channels)]
    return Audio(np.stack(rows).astype(np.float32), sample_rate)


def pattern_frame(index: int, time: float, width: int, height: int) -> np.ndarray:
    """An RGB ``(height, width, 3)`` uint8 picture: moving gradient, moving square, index code.

    Left/right and top/bottom are deliberately asymmetric (a red corner at the
    bottom left), so any flip or rotation changes the picture.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    shift = time * 60.0
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 127 + 100 * np.sin((x + shift) / max(width, 1) * 2 * np.pi)
    img[..., 1] = 40 + 180 * (y / max(height - 1, 1))
    img[..., 2] = 127 + 100 * np.cos((x - 2 * shift) / max(width, 1) * 4 * np.pi)
    # A square that travels across the picture once every two seconds.
    side = max(4, min(width, height) // 5)
    top = int(height * 0.45)
    left = int((width - side) * ((time / 2.0) % 1.0))
    img[top : top + side, left : left + side] = (250, 250, 30)
    # A fixed red corner: breaks every symmetry.
    img[height - max(2, height // 6) :, : max(2, width // 6)] = (230, 20, 20)
    _draw_index(img, index)
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_index(img: np.ndarray, index: int) -> None:
    height, width = img.shape[:2]
    rows = max(2, int(height * _INDEX_ROWS))
    block = width / INDEX_BITS
    for bit in range(INDEX_BITS):
        value = 255.0 if (index >> bit) & 1 else 0.0
        img[:rows, int(bit * block) : int((bit + 1) * block)] = value


def read_frame_index(img: np.ndarray) -> int:
    """Read back the index drawn by :func:`pattern_frame` from an upright ``(H, W, 3)`` picture.

    Accepts uint8 in [0, 255] or float pictures in [0, 1]; only the centre of
    each block is sampled, so bicubic ringing at block edges does not matter.
    """
    pic = np.asarray(img, dtype=np.float32)
    if pic.max() <= 1.0 + 1e-6:
        pic = pic * 255.0
    height, width = pic.shape[:2]
    rows = max(2, int(height * _INDEX_ROWS))
    block = width / INDEX_BITS
    value = 0
    for bit in range(INDEX_BITS):
        x0, x1 = int(bit * block), int((bit + 1) * block)
        cx0, cx1 = x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4
        centre = pic[rows // 4 : max(rows // 4 + 1, 3 * rows // 4), cx0 : max(cx0 + 1, cx1)]
        if centre.mean() > 127.5:
            value |= 1 << bit
    return value


def frame_times(duration: float, fps: float | Fraction, vfr: bool = False) -> list[Fraction]:
    """Presentation times (seconds, exact fractions) of the frames :func:`make_video` writes.

    With ``vfr`` the gaps cycle through 0.5, 1.0 and 1.5 frame periods: the
    average rate is ``fps`` but no two neighbouring gaps are equal, like a phone
    recording that drops and bunches frames.
    """
    period = 1 / Fraction(fps).limit_denominator(100000)
    steps = [Fraction(1, 2), Fraction(1), Fraction(3, 2)] if vfr else [Fraction(1)]
    times: list[Fraction] = []
    t = Fraction(0)
    i = 0
    while t < Fraction(duration).limit_denominator(100000) - Fraction(1, 10**9):
        times.append(t)
        t += period * steps[i % len(steps)]
        i += 1
    return times


def make_video(
    path: Path | str,
    duration: float = 2.0,
    fps: float | Fraction = 25,
    size: tuple[int, int] = (320, 240),
    audio: Audio | None = None,
    rotation: int = 0,
    codec: str = "h264",
    vfr: bool = False,
    pix_fmt: str = "yuv420p",
    crf: int = 18,
    audio_codec: str | None = None,
) -> Path:
    """Write a clip showing :func:`pattern_frame` and return its path.

    ``size`` is ``(width, height)`` as a viewer sees it. With ``rotation``
    (degrees counter-clockwise, as stored in a display matrix: 90, 180, -90)
    the pictures are stored turned the other way and the stream is tagged, so a
    player that honours the tag shows exactly the upright pattern: the same as
    an untagged clip of the same ``size``. ``fps`` may be a fraction
    (``Fraction(30000, 1001)``) or a float (29.97 is taken as 30000/1001).
    The container follows the suffix (``.mp4``, ``.mkv``, ``.mov``, ``.webm``).
    """
    path = Path(path)
    rate = _as_rate(fps)
    times = frame_times(duration, rate, vfr)
    width, height = size
    k = (round(rotation / 90) % 4) if rotation else 0
    if rotation and rotation % 90:
        raise ValueError("rotation must be a multiple of 90 degrees")

    # A fine time base keeps VFR and NTSC timestamps exact.
    time_base = Fraction(1, 90000) if vfr else 1 / rate
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stored_w, stored_h = (height, width) if k % 2 else (width, height)
        stream.width, stream.height = stored_w, stored_h
        stream.pix_fmt = pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if codec in ("h264", "libx264"):
            # macroblock-tree rate control makes x264's pictures differ from one encode to the next
            # (and so would anything trained or measured on them): off, the same frames encode alike
            stream.options = {"crf": str(crf), "preset": "veryfast", "x264-params": "mbtree=0"}
        if k:
            stream.set_display_rotation(90 * k if 90 * k <= 180 else 90 * k - 360)

        audio_stream = None
        if audio is not None:
            audio_stream = _add_audio_stream(container, audio, audio_codec)

        for i, t in enumerate(times):
            upright = pattern_frame(i, float(t), width, height)
            stored = np.ascontiguousarray(np.rot90(upright, -k)) if k else upright
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = int(round(t / time_base))
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

        if audio is not None and audio_stream is not None:
            _encode_audio(container, audio_stream, audio)
    return path


def make_audio_file(path: Path | str, audio: Audio, codec: str | None = None) -> Path:
    """Write ``audio`` to ``path``: wav/flac through soundfile, anything else through PyAV."""
    import soundfile as sf

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".wav", ".flac") and codec is None:
        subtype = "FLOAT" if suffix == ".wav" else "PCM_24"
        sf.write(str(path), audio.waveform.T, audio.sample_rate, subtype=subtype)
        return path
    with av.open(str(path), mode="w") as container:
        stream = _add_audio_stream(container, audio, codec)
        _encode_audio(container, stream, audio)
    return path


def make_zero_length_video(path: Path | str, size: tuple[int, int] = (64, 48)) -> Path:
    """A well-formed container with a video stream that holds no frames at all."""
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("h264", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
    return path


def truncate_file(src: Path | str, dst: Path | str, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of ``src``'s bytes: a download cut short."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: max(1, int(len(data) * keep))])
    return Path(dst)


_DEFAULT_AUDIO_CODECS = {".mp4": "aac", ".m4a": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus"}


def _add_audio_stream(container: av.container.OutputContainer, audio: Audio, codec: str | None):
    suffix = Path(container.name).suffix.lower()
    codec = codec or _DEFAULT_AUDIO_CODECS.get(suffix, "aac")
    layout = {1: "mono", 2: "stereo"}.get(audio.num_channels)
    if layout is None:
        raise ValueError("test audio must be mono or stereo")
    stream = container.add_stream(codec, rate=audio.sample_rate)
    stream.layout = layout
    return stream


def _encode_audio(container: av.container.OutputContainer, stream, audio: Audio) -> None:
    # PyAV converts to the encoder's own sample format and frame size.
    frame = av.AudioFrame.from_ndarray(
        audio.waveform.astype(np.float32), format="fltp", layout=stream.layout.name
    )
    frame.sample_rate = audio.sample_rate
    frame.pts = 0
    frame.time_base = Fraction(1, audio.sample_rate)
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _as_rate(fps: float | Fraction) -> Fraction:
    if isinstance(fps, Fraction):
        return fps
    for ntsc in (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)):
        if abs(float(ntsc) - float(fps)) < 0.005:
            return ntsc
    return Fraction(fps).limit_denominator(1001)
