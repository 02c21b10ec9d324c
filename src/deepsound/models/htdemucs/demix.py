"""A track of any length through the 7.8 s graph, as Demucs's ``apply_model`` does it.

Segments start every ``(1 - overlap) × 7.8 s``; each is cut from the track with
as much of the track around it as the segment needs (zeros only past the
track's ends), run, trimmed back to its centre, and laid in with a triangular
weight, the sum divided by the summed weights. With ``shifts`` the whole track
is also moved by random offsets of up to half a second and the results
averaged (Demucs's test-time augmentation); the offsets come from a seeded
generator. The track is normalised by its mono mix's mean and standard
deviation first, and the stems brought back, as Demucs's separator does.

Written here rather than imported: Demucs's package pulls in torchaudio and its
training stack; the splitting is forty lines.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
import torch.nn.functional as F

from deepsound.models.htdemucs.graph import SAMPLE_RATE, SEGMENT, SOURCES

Segment = Callable[[torch.Tensor], torch.Tensor]  # (C, SEGMENT) -> (S, C, SEGMENT)
Progress = Callable[[int, int], None]  # (segments done, segments in all)


def _window(base: torch.Tensor, offset: int, length: int, target: int) -> torch.Tensor:
    """``base[..., offset:offset+length]`` widened to ``target`` around its centre, with the base's own
    samples where it has them and zeros beyond (Demucs's ``TensorChunk.padded``)."""
    start = offset - (target - length) // 2
    end = start + target
    lo, hi = max(start, 0), min(end, base.shape[-1])
    return F.pad(base[..., lo:hi], (lo - start, end - hi))


def _centre(x: torch.Tensor, length: int) -> torch.Tensor:
    extra = x.shape[-1] - length
    return x[..., extra // 2 : extra // 2 + length]


def _split(run: Segment, base: torch.Tensor, offset: int, length: int, overlap: float) -> torch.Tensor:
    """Stems of ``base[..., offset:offset+length]``, segment by segment with triangular cross-fades.

    ``run`` counts the segments it is given (see :func:`separate_track`).
    """
    out = torch.zeros(len(SOURCES), base.shape[0], length)
    total = torch.zeros(length)
    stride = int((1 - overlap) * SEGMENT)
    weight = torch.cat(
        [torch.arange(1, SEGMENT // 2 + 1), torch.arange(SEGMENT - SEGMENT // 2, 0, -1)]
    ).float()
    weight = weight / weight.max()
    for start in range(0, length, stride):
        n = min(SEGMENT, length - start)
        piece = _centre(run(_window(base, offset + start, n, SEGMENT)), n)
        out[..., start : start + n] += weight[:n] * piece
        total[start : start + n] += weight[:n]
    return out / total


def segments_needed(n: int, *, overlap: float = 0.25, shifts: int = 0) -> int:
    """How many times the graph runs for ``n`` samples (an upper bound with shifts): for a progress bar."""
    stride = int((1 - overlap) * SEGMENT)
    if not shifts:
        return len(range(0, n, stride))
    return shifts * len(range(0, n + int(0.5 * SAMPLE_RATE), stride))


def separate_track(
    run: Segment,
    mix: torch.Tensor,
    *,
    overlap: float = 0.25,
    shifts: int = 0,
    seed: int = 0,
    progress: Progress | None = None,
) -> torch.Tensor:
    """``(C, n)`` at 44.1 kHz → ``(S, C, n)`` stems (drums, bass, other, vocals)."""
    if progress is not None:
        total, done, graph = segments_needed(mix.shape[-1], overlap=overlap, shifts=shifts), 0, run

        def run(segment: torch.Tensor) -> torch.Tensor:
            nonlocal done
            out = graph(segment)
            done += 1
            progress(min(done, total), total)
            return out

    mono = mix.mean(dim=0)
    mean, std = mono.mean(), mono.std() + 1e-8
    x = (mix - mean) / std
    n = x.shape[-1]
    if shifts:
        most = int(0.5 * SAMPLE_RATE)
        padded = _window(x, 0, n, n + 2 * most)
        rng, out = random.Random(seed), torch.zeros(len(SOURCES), *x.shape)
        for _ in range(shifts):
            offset = rng.randint(0, most)
            shifted = _split(run, padded, offset, n + most - offset, overlap)
            out += shifted[..., most - offset :]
        stems = out / shifts
    else:
        stems = _split(run, x, 0, n, overlap)
    return stems * std + mean
