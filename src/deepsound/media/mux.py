"""Put a new soundtrack on a video without touching its pictures.

Re-encoding the video (what the reference pipeline does, through its own H.264
encoder or moviepy) costs time, loses quality and can shift frames; here the
video packets are copied byte for byte into the new file and only the audio is
encoded (AAC). The audio is trimmed or padded with silence to the video's
length, the original audio track is dropped, and the display rotation is kept
so phone clips stay upright.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deepsound.audio import Audio
from deepsound.errors import MediaError, OutputError
from deepsound.files import atomic_output
from deepsound.media._open import explain, media_errors, open_input
from deepsound.media.info import MediaInfo, probe

AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
"""Sample rates AAC can signal; other rates are resampled to 48 kHz."""

_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_LAYOUTS = {1: "mono", 2: "stereo"}


def mux_audio(
    video_path: Path | str, audio: Audio | None, output_path: Path | str, bit_rate: int = 192_000
) -> Path:
    """Write ``output_path``: the video stream of ``video_path`` copied, plus ``audio`` as AAC.

    The audio starts with the video's first frame and lasts exactly as long as
    the video stream. ``audio=None`` writes the video with no audio track at all
    (the `rm` fallback: a silent clip, not a track of zeros). The write is
    atomic, so ``output_path`` may even be ``video_path`` itself.
    """
    video_path, output_path = Path(video_path), Path(output_path)
    out_format = _CONTAINERS.get(output_path.suffix.lower())
    if out_format is None:
        raise OutputError(
            f"{output_path}: cannot write video as '{output_path.suffix}' (use .mp4, .mov or .mkv)"
        )
    if audio is not None and audio.num_channels not in _LAYOUTS:
        raise ValueError(f"audio must be mono or stereo to mux, got {audio.num_channels} channels")
    info = probe(video_path)
    if not info.has_video:
        raise MediaError(f"{video_path}: has no video stream to put audio on")

    video_start, video_length = _video_span(video_path, info)
    if audio is not None:
        if audio.sample_rate not in AAC_RATES:
            audio = audio.resample(48000)
        audio = audio.fit_length(int(round(video_length * audio.sample_rate)))

    options = {"movflags": "+faststart"} if out_format in ("mp4", "mov") else {}
    if audio is not None and out_format in ("mp4", "mov"):
        # Edit lists count in the movie time scale (1/1000 s by default); counting in
        # audio samples lets the declared audio length match the video's to the sample.
        options = {"movflags": "+faststart", "movie_timescale": str(audio.sample_rate)}
    with atomic_output(output_path) as tmp:
        source = open_input(video_path)
        try:
            target = av.open(str(tmp), mode="w", format=out_format, options=options)
        except av.error.FFmpegError as exc:
            source.close()
            raise OutputError(f"{output_path}: cannot create ({explain(exc)})") from None
        with source, target, media_errors(video_path, "copying the video stream"):
            _remux(source, target, info, audio, video_start, bit_rate)
    return output_path


def _video_span(path: Path, info: MediaInfo) -> tuple[float, float]:
    """(first presentation time, length) of the video stream in seconds."""
    container = open_input(path)
    with container, media_errors(path, "reading video timing"):
        stream = container.streams.video[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        if stream.duration and stream.time_base:
            return start, float(stream.duration * stream.time_base)
        # No length in the header (some Matroska/WebM): the end of the last packet.
        period = 1 / info.fps if info.fps else 0.0
        first = last = None
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            t0 = float(packet.pts * packet.time_base)
            t1 = t0 + (float(packet.duration * packet.time_base) if packet.duration else period)
            first = t0 if first is None else min(first, t0)
            last = t1 if last is None else max(last, t1)
        if first is None:
            raise MediaError(f"{path}: video stream holds no frames (zero-length video)")
        return first, last - first


def _remux(
    source: av.container.InputContainer,
    target: av.container.OutputContainer,
    info: MediaInfo,
    audio: Audio | None,
    video_start: float,
    bit_rate: int,
) -> None:
    video_in = source.streams.video[0]
    video_out = target.add_stream_from_template(video_in)
    if info.rotation:
        # Re-state the display matrix; copies of codec parameters do not always carry it.
        video_out.set_display_rotation(info.rotation if info.rotation <= 180 else info.rotation - 360)
    audio_packets: list[av.Packet] = []
    if audio is not None:
        audio_out = target.add_stream("aac", rate=audio.sample_rate)
        audio_out.layout = _LAYOUTS[audio.num_channels]
        audio_out.bit_rate = bit_rate
        audio_packets = _encode_audio(audio_out, audio, video_start)
    pending = iter(audio_packets)
    next_audio = next(pending, None)
    gap = max(1, int(round(1 / (info.fps or 25.0) / float(video_in.time_base))))
    for packet in _with_dts(source.demux(video_in), gap):
        when = float(packet.dts * packet.time_base)
        # Interleave by time so players need not seek back and forth in the file.
        while next_audio is not None and _seconds(next_audio) <= when:
            target.mux(next_audio)
            next_audio = next(pending, None)
        packet.stream = video_out
        target.mux(packet)
    while next_audio is not None:
        target.mux(next_audio)
        next_audio = next(pending, None)


def _with_dts(packets: Iterable[av.Packet], gap: int) -> Iterator[av.Packet]:
    """Video packets with a decoding timestamp each, as MP4 needs.

    Matroska stores presentation times only; with B-frames the demuxer cannot
    tell the first packets' decoding times until its reorder buffer fills. Those
    get times one frame apart just before the first known one: increasing, and
    before their presentation times, which is all a decoder needs.
    """
    waiting: list[av.Packet] = []
    for packet in packets:
        if packet.size == 0:  # the empty packet that ends demuxing
            continue
        if packet.dts is None:
            waiting.append(packet)
            continue
        yield from _backdate(waiting, packet.dts, gap)
        waiting = []
        yield packet
    if waiting:
        known = [p.pts for p in waiting if p.pts is not None]
        yield from _backdate(waiting, min(known) if known else 0, gap)


def _backdate(waiting: list[av.Packet], before: int, gap: int) -> Iterator[av.Packet]:
    for i, packet in enumerate(waiting):
        packet.dts = before - (len(waiting) - i) * gap
        if packet.pts is None:
            packet.pts = packet.dts
        yield packet


def _encode_audio(stream: av.audio.stream.AudioStream, audio: Audio, start: float) -> list[av.Packet]:
    rate = audio.sample_rate
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(audio.waveform, dtype=np.float32), format="fltp", layout=stream.layout.name
    )
    frame.sample_rate = rate
    frame.time_base = Fraction(1, rate)
    frame.pts = int(round(start * rate))
    packets = list(stream.encode(frame))
    packets.extend(stream.encode(None))
    return packets


def _seconds(packet: av.Packet) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base) if stamp is not None else 0.0
