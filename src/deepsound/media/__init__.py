"""Reading and writing media with PyAV: no ffmpeg program needs to be installed.

- :func:`probe` tells what a file holds (:class:`MediaInfo`).
- :func:`decode_video` turns a video into the two frame streams MMAudio
  conditions on, sampled exactly as the official implementation samples them.
- :func:`read_audio` / :func:`write_audio` move :class:`~deepsound.audio.Audio`
  in and out of files.
- :func:`mux_audio` puts a new soundtrack on a video without re-encoding its
  pictures.
"""

from deepsound.media.audio_io import read_audio, write_audio
from deepsound.media.info import MediaInfo, probe
from deepsound.media.mux import mux_audio
from deepsound.media.video import DecodedVideo, decode_video

__all__ = [
    "DecodedVideo",
    "MediaInfo",
    "decode_video",
    "mux_audio",
    "probe",
    "read_audio",
    "write_audio",
]
