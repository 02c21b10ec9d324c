"""What VideoLLaMA2's inference path feeds the model, reproduced without its decoders.

Video. The reference decodes with decord, takes ``num_frames`` (16 for the
published models) frames at indices ``round((i + 0.5) * (n - 1) / num_frames)``
of the ``n`` frames, pads with black frames when a video is shorter, and
hands the frames (no square padding on this path) to SigLIP's image processor
(bicubic resize to 384², scale to [0, 1], normalise with mean = std = 0.5).
Here the frames are decoded with PyAV. decord does not apply MP4 edit lists:
on a file whose edit list cuts a pre-roll, its frame ``i`` is not the
``i``-th frame a player shows. PyAV (FFmpeg) applies the edit list, so the
indices here count the frames the file really presents. decord also ignores
rotation tags; so does this path, to keep the frames the model was tuned on.

Audio. The reference pipes the file through the ``ffmpeg`` command line to
16-bit mono 16 kHz samples, cuts eight 2-second clips at
``k · max(d - 2, 0) / 8`` seconds (pytorchvideo's ``ConstantClipsPerVideoSampler``;
a clip past the end is cut short, and a sound under 2 s is repeated eight
times), concatenates them, pads with zeros to 30 s, scales by 2^15 and takes
128-bin Kaldi filter banks, rounded to bfloat16. Here the decode is PyAV's
libswresample (the library behind the command line's ``-ac 1 -ar 16000``)
with its default settings and the same s16 quantisation. Measured against
the ``ffmpeg`` command line (Debian's ffmpeg 5.1 beside the FFmpeg 8.1
PyAV bundles) on the project's real clips: same sample counts; ``aa.mp4`` bit for
bit; the two others differ in 1 of 43 096 and 18 of 160 198 samples, by one
LSB each (rounding inside the resampler between FFmpeg versions); the fbank
of ``aa.mp4`` equals the reference's exactly. A high-quality resampler of our
own (soxr, torchaudio) would move every sample. A step-1 waveform held in
memory goes through the same resampler, so step 2 hears what the reference
hears from its muxed file, minus the AAC round trip the mux adds there.

Both inputs are then rounded to float16, as the reference's ``mm_infer``
does before the model casts them to its own precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepsound.errors import MediaError
from deepsound.models.videollama2.fbank import kaldi_fbank

SAMPLE_RATE = 16_000
CLIPS = 8
CLIP_SECONDS = 2
PADDED_SECONDS = 30


@dataclass
class Frames:
    frames: np.ndarray  # (num_frames, H, W, 3) uint8 RGB
    indices: list[int]
    total: int  # frames the file presents
    fps: float


def frame_indices(total: int, num_frames: int) -> list[int]:
    """The reference's uniform sampling: the middle of each of ``num_frames`` segments of ``[0, total - 1]``."""
    segment = float(total - 1) / num_frames
    middles = [(segment * i + segment * (i + 1)) / 2 for i in range(num_frames)]
    return np.round(np.array(middles) + 1e-6).astype(int).tolist()


def read_frames(path: Path, num_frames: int, *, max_seconds: float | None = None) -> Frames:
    """Decode the file's frames once to count them, then keep the sampled ones (RGB, stored orientation).

    ``max_seconds`` keeps only the frames shown before that time: a video muxed
    with a shorter generated audio ends with the audio.
    """
    from deepsound.media._open import media_errors, open_input

    path = Path(path)
    total, fps = 0, 0.0
    container = open_input(path)
    with container, media_errors(path, "decoding frames"):
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or 0.0)
        for frame in container.decode(stream):
            if max_seconds is not None and frame.time is not None and frame.time >= max_seconds and total:
                break
            total += 1
    if total == 0:
        raise MediaError(f"{path}: no decodable video frame")
    wanted = frame_indices(total, num_frames)
    picked: dict[int, np.ndarray] = {}
    container = open_input(path)
    with container, media_errors(path, "decoding frames"):
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                picked[index] = frame.to_ndarray(format="rgb24")
            if index >= max(wanted):
                break
    last = picked[max(picked)]
    frames = [picked.get(i, last) for i in wanted]
    while len(frames) < num_frames:  # the reference pads short videos with black frames
        frames.append(np.zeros_like(frames[-1]))
    return Frames(np.stack(frames), wanted, total, fps)


def pixel_values(frames: np.ndarray, processor: Any) -> torch.Tensor:
    """``(T, 3, S, S)`` SigLIP pixels from ``(T, H, W, 3)`` frames, rounded to float16 as the reference feeds them.

    The steps are the image processor's of the reference's transformers (4.42):
    a PIL resize with the processor's filter (bicubic), ``uint8 × rescale_factor``
    in float64 then float32, ``(x - mean) / std`` in float32. They are done
    here from the processor's settings because newer transformers resize with
    torchvision, whose bicubic kernel differs by up to one grey level.
    """
    from PIL import Image

    size = processor.size
    height, width = int(size["height"]), int(size["width"])
    resample = Image.Resampling(int(getattr(processor, "resample", Image.Resampling.BICUBIC)))
    mean = np.array(processor.image_mean, dtype=np.float32)
    std = np.array(processor.image_std, dtype=np.float32)
    out = []
    for frame in frames:
        x = np.asarray(Image.fromarray(frame).convert("RGB").resize((width, height), resample=resample))
        x = (
            (x * float(processor.rescale_factor)).astype(np.float32)
            if processor.do_rescale
            else x.astype(np.float32)
        )
        if processor.do_normalize:
            x = (x - mean) / std
        out.append(x.transpose(2, 0, 1))
    return torch.from_numpy(np.ascontiguousarray(np.stack(out))).half()


def _s16(resampler: Any, frames: Any) -> np.ndarray:
    chunks = []
    for frame in frames:
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def decode_audio(path: Path) -> np.ndarray | None:
    """The file's audio as the reference's ``ffmpeg -ac 1 -ar 16000 -f s16le`` gives it; ``None`` without audio."""
    import av

    from deepsound.media._open import open_input

    try:
        container = open_input(Path(path))
    except MediaError:
        return None
    with container:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            return _s16(resampler, container.decode(container.streams.audio[0]))
        except av.FFmpegError:
            return None


def resample_waveform(waveform: np.ndarray, rate: int) -> np.ndarray:
    """A ``(channels, samples)`` float waveform through the same s16 mono 16 kHz conversion."""
    import av

    data = np.ascontiguousarray(np.atleast_2d(waveform).astype(np.float32))
    channels = data.shape[0]
    layout = {1: "mono", 2: "stereo"}.get(channels)
    if layout is None:  # more channels than the resampler's named layouts: mix down to mono first
        data, layout = data.mean(axis=0, keepdims=True), "mono"
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    frames = []
    step = 4096
    for start in range(0, data.shape[1], step):
        frame = av.AudioFrame.from_ndarray(data[:, start : start + step], format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        frames.append(frame)
    return _s16(resampler, frames)


def clip_bounds(duration: float) -> list[tuple[Fraction, Fraction]]:
    """Start and end seconds of the eight 2-s clips (pytorchvideo ``ConstantClipsPerVideoSampler`` 0.1.5)."""
    length = Fraction(CLIP_SECONDS)
    latest = Fraction(max(duration - length, 0))
    step = Fraction(latest, CLIPS)
    return [(step * k, step * k + length) for k in range(CLIPS)]


def audio_fbank(samples: np.ndarray | None) -> torch.Tensor:
    """``(1, 2998, 128)`` float16 filter banks of 16 kHz mono samples (``None``: the reference's 30 s of silence)."""
    if samples is None:
        samples = np.zeros(PADDED_SECONDS * SAMPLE_RATE, dtype=np.float32)
    samples = np.asarray(samples, dtype=np.float32)
    clips = [
        torch.from_numpy(samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)])
        for start, end in clip_bounds(samples.shape[0] / SAMPLE_RATE)
    ]
    wav = torch.cat(clips)[: PADDED_SECONDS * SAMPLE_RATE]  # 8 × 2 s never exceeds the 30-s window
    wav = torch.nn.functional.pad(wav, (0, PADDED_SECONDS * SAMPLE_RATE - wav.numel()))
    fbank = kaldi_fbank(wav.unsqueeze(0) * 2**15, num_mel_bins=128, sample_rate=SAMPLE_RATE)
    return fbank.to(torch.bfloat16).unsqueeze(0).half()
