"""Reference-video frames as av-benchmark feeds ImageBind (0.5 fps) and Synchformer (25 fps).

av-benchmark's ``VideoDataset`` decodes each video once with two FFmpeg output
streams, ``fps=0.5,format=rgb24`` and ``fps=25,format=rgb24``, keeps the first
``int(0.5 * D)`` and ``int(25 * D)`` frames (D = the clip length, 10 s in the
paper) and rejects a video that yields fewer. This module builds the same two
libavfilter graphs through PyAV, so the frames picked are FFmpeg's own: the
``fps`` filter gives output tick ``n`` the *last* input frame whose timestamp,
rounded to the nearest tick, is at most ``n`` (for a 30 fps file at 0.5 fps:
frames 29, 89, 149, ...; at 25 fps: 0, 1, 2, 4, 5, 6, ...). Like the official
loader, rotation metadata is not applied.

Then, per stream:

* ImageBind: shorter side to 224 (torchvision v2 bicubic, antialiased, on
  uint8), ``[0, 1]``, CLIP mean/std; three 224 crops along the longer side
  (left/top, centre, right/bottom, offsets as ImageBind's ``uniform_crop``);
  every pair of consecutive frames is one 2-frame clip:
  :func:`imagebind_clips` gives ``(3 * (T - 1), 3, 2, 224, 224)``, clip-major,
  crops inner, the order av-benchmark concatenates them in.
* Synchformer: :func:`deepsound.media.video.sync_transform` (shorter side 224,
  centre crop, ``[-1, 1]``): ``(T, 3, 224, 224)``; its first and last 4.8 s are
  what DeSync reads (:mod:`deepsound.models.eval.synchformer_audio`).

A video that is too short raises :class:`MediaError` naming it (the official
loader logs it and drops the file); the caller reports and skips it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from deepsound.errors import MediaError
from deepsound.media._open import media_errors, open_input
from deepsound.media.video import sync_transform

IMAGEBIND_FPS = 0.5
IMAGEBIND_SIZE = 224
SYNC_FPS = 25.0
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class EvalVideo:
    """``imagebind``: (3 crops, T_ib, 3, 224, 224) normalised; ``sync``: (T_sync, 3, 224, 224) in [-1, 1]."""

    imagebind: torch.Tensor | None
    sync: torch.Tensor | None


def imagebind_transform(frames: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) uint8 -> (3, T, 3, 224, 224): resize, scale, normalise, three spatial crops."""
    resized = TF.resize(frames, [IMAGEBIND_SIZE], interpolation=InterpolationMode.BICUBIC, antialias=True)
    x = TF.normalize(TF.to_dtype(resized, torch.float32, scale=True), mean=CLIP_MEAN, std=CLIP_STD)
    return torch.stack([uniform_crop(x, IMAGEBIND_SIZE, k) for k in range(3)])


def uniform_crop(images: torch.Tensor, size: int, index: int) -> torch.Tensor:
    """Crop ``index`` 0/1/2 (start/centre/end of the longer side) of ``(..., H, W)`` images."""
    height, width = images.shape[-2:]
    y = int(math.ceil((height - size) / 2))
    x = int(math.ceil((width - size) / 2))
    if height > width:
        y = {0: 0, 1: y, 2: height - size}[index]
    else:
        x = {0: 0, 1: x, 2: width - size}[index]
    return images[..., y : y + size, x : x + size]


def imagebind_clips(crops: torch.Tensor) -> torch.Tensor:
    """(3, T, 3, H, W) -> (3 * (T - 1), 3, 2, H, W): consecutive frame pairs, clip-major, crops inner."""
    if crops.shape[1] < 2:
        raise MediaError(f"ImageBind needs at least 2 frames at 0.5 fps (4 s of video); got {crops.shape[1]}")
    pairs = [crops[:, i : i + 2] for i in range(crops.shape[1] - 1)]  # each (3, 2, C, H, W)
    return torch.cat(pairs, dim=0).transpose(1, 2).contiguous()


def _graph(stream: av.video.stream.VideoStream, fps: float) -> av.filter.Graph:
    graph = av.filter.Graph()
    src = graph.add_buffer(template=stream)
    rate = graph.add("fps", f"{fps:g}")
    fmt = graph.add("format", "rgb24")
    sink = graph.add("buffersink")
    src.link_to(rate)
    rate.link_to(fmt)
    fmt.link_to(sink)
    graph.configure()
    return graph


def _drain(graph: av.filter.Graph, out: list[np.ndarray], need: int) -> None:
    while len(out) < need:
        try:
            out.append(graph.pull().to_ndarray())
        except (av.BlockingIOError, av.EOFError):
            return


def decode_frames(path: Path | str, rates: dict[str, float], duration: float) -> dict[str, torch.Tensor]:
    """First ``int(fps * duration)`` frames of each FFmpeg ``fps`` stream, ``(T, 3, H, W)`` uint8.

    Raises :class:`MediaError` when the file has no video or a stream yields fewer frames.
    """
    path = Path(path)
    need = {name: int(fps * duration) for name, fps in rates.items()}
    if min(need.values()) < 1:
        raise ValueError(f"{duration:g} s holds no frame at {min(rates.values()):g} fps")
    got: dict[str, list[np.ndarray]] = {name: [] for name in rates}
    container = open_input(path)
    with container, media_errors(path, "decoding video"):
        if not container.streams.video:
            raise MediaError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        graphs = {name: _graph(stream, fps) for name, fps in rates.items()}
        for frame in container.decode(stream):
            for name, graph in graphs.items():
                if len(got[name]) < need[name]:
                    graph.push(frame)
                    _drain(graph, got[name], need[name])
            if all(len(got[n]) >= need[n] for n in rates):
                break
        else:  # end of file: the filters release the frames they held back
            for name, graph in graphs.items():
                if len(got[name]) < need[name]:
                    graph.push(None)
                    _drain(graph, got[name], need[name])
    out = {}
    for name, fps in rates.items():
        if len(got[name]) < need[name]:
            raise MediaError(
                f"{path}: video too short for {name}: {len(got[name])} frames at {fps:g} fps, "
                f"need {need[name]} ({duration:g} s)"
            )
        out[name] = torch.from_numpy(np.stack(got[name])).permute(0, 3, 1, 2)
    return out


def decode_eval_video(
    path: Path | str, duration: float = 10.0, *, imagebind: bool = True, sync: bool = True
) -> EvalVideo:
    """Decode ``path`` once into the ImageBind and/or Synchformer frame streams (see module doc)."""
    rates = {}
    if imagebind:
        rates["imagebind"] = IMAGEBIND_FPS
    if sync:
        rates["sync"] = SYNC_FPS
    if not rates:
        raise ValueError("ask for at least one of imagebind / sync")
    frames = decode_frames(path, rates, duration)
    ib = imagebind_transform(frames["imagebind"]) if imagebind else None
    sy = sync_transform(frames["sync"]) if sync else None
    return EvalVideo(ib, sy)
