"""Audio in and out of files.

Reading goes through PyAV so that any container works, including the audio
track of a video (the "original audio" a user may want to compare with).
Resampling uses soxr, the same resampler as :meth:`Audio.resample`, so a
16 kHz model and a 44.1 kHz model see consistently converted inputs.
Writing uses soundfile (WAV, FLAC): lossless outputs, picked by suffix.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from deepsound.audio import Audio
from deepsound.errors import MediaError, OutputError
from deepsound.files import atomic_output
from deepsound.media._open import media_errors, open_input
from deepsound.media.info import check_complete

_MAX_PADDING = 4096
"""Decoded samples beyond the stream's declared length that count as encoder padding.

AAC and MP3 encoders pad the last frame; MP4 records the true length in an
edit list, which FFmpeg's decoder does not apply at the end. Trimming to the
declared length makes a muxed soundtrack read back as long as it was written.
"""

_WRITE_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}
"""Default sample format per suffix: float WAV keeps generated audio bit-exact; FLAC has no float."""


def read_audio(path: Path | str, sample_rate: int | None = None, mono: bool = False) -> Audio:
    """Decode the first audio stream of ``path`` to float32 ``(channels, samples)``.

    ``sample_rate`` resamples (soxr, very high quality); ``mono`` averages the
    channels. Raises :class:`MediaError` when the file has no audio stream or
    the stream holds no samples.
    """
    path = Path(path)
    container = open_input(path)
    with container, media_errors(path, "decoding audio"):
        if not container.streams.audio:
            raise MediaError(f"{path}: has no audio stream")
        stream = container.streams.audio[0]
        check_complete(container, path)
        # Planar float at the stream's own rate and layout: a lossless view of the decoded samples.
        resampler = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        rate = 0
        for frame in container.decode(stream):
            for converted in resampler.resample(frame):
                rate = converted.sample_rate
                chunks.append(converted.to_ndarray())
        for converted in resampler.resample(None):
            chunks.append(converted.to_ndarray())
        declared = _declared_samples(stream, rate)
    if not chunks or sum(c.shape[1] for c in chunks) == 0:
        raise MediaError(f"{path}: audio stream holds no samples")
    wave = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if declared and 0 < wave.shape[1] - declared <= _MAX_PADDING:
        wave = wave[:, :declared]
    audio = Audio(wave, rate)
    if mono:
        audio = audio.to_mono()
    if sample_rate is not None and sample_rate != audio.sample_rate:
        audio = audio.resample(int(sample_rate))
    return audio


def _declared_samples(stream: av.audio.stream.AudioStream, rate: int) -> int | None:
    if not (stream.duration and stream.time_base and rate):
        return None
    return int(round(float(stream.duration * stream.time_base) * rate))


def write_audio(path: Path | str, audio: Audio, subtype: str | None = None) -> Path:
    """Write ``audio`` as WAV (float32 by default) or FLAC (24-bit), chosen by suffix; atomic.

    Integer sample formats clip to [-1, 1] first: libsndfile would otherwise
    wrap loud peaks around to the opposite sign.
    """
    import soundfile as sf

    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"{path}: cannot write audio as '{path.suffix}' (use .wav or .flac)")
    container, default_subtype = fmt
    subtype = subtype or default_subtype
    wave = audio.waveform
    if not subtype.upper().startswith(("FLOAT", "DOUBLE")):
        wave = np.clip(wave, -1.0, 1.0)
    with atomic_output(path) as tmp:
        try:
            sf.write(str(tmp), wave.T, audio.sample_rate, subtype=subtype, format=container)
        except (sf.LibsndfileError, ValueError, TypeError) as exc:
            raise OutputError(f"{path}: cannot write audio ({exc})") from None
    return path
