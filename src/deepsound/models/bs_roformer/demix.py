"""Separate a track of any length with a model that only sees fixed-size chunks.

The chunking reproduces the overlap-add of Music-Source-Separation-Training's
generic ``demix`` exactly, quirks included, so that a checkpoint gives the
output its authors measured:

* chunks of ``chunk_size`` start every ``chunk_size // num_overlap`` samples;
* a track longer than two borders (``border = chunk_size - step``) is first
  reflect-padded by one border on each side, and the padding is cut off again;
* a chunk that runs past the end is reflect-padded when more than half of it
  is real audio, zero-padded otherwise;
* each chunk is weighted by a window with linear fades of ``chunk_size // 10``
  samples, and the sum is divided by the summed weights. The reference decides
  the fades per *batch* of ``batch_size`` chunks: the batch holding only the
  first chunk has no fade-in, the last batch has no fade-out on all of its
  chunks. The window therefore depends on the reference batch size, which is
  kept as a setting (``window_batch_size``) separate from how many chunks we
  actually run at once.

What we do differently changes cost, not output: chunks whose samples all lie
in the cut-off padding are never run (for 10 s at the viperx settings that is
one chunk in five), the window is built once, and the number of chunks run at
once is free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from deepsound.progress import report

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Chunk:
    start: int  # in the (possibly padded) signal
    length: int  # real samples (<= chunk_size)
    fade_in: bool
    fade_out: bool


@dataclass(frozen=True)
class ChunkPlan:
    """Where the chunks go and how each is weighted, for one track length."""

    chunk_size: int
    step: int
    fade: int
    border: int  # samples of reflect padding on each side (0 when none)
    padded_length: int
    chunks: tuple[Chunk, ...]  # every chunk the reference would run
    needed: tuple[bool, ...]  # whether a chunk touches the samples that are kept

    @property
    def num_needed(self) -> int:
        return sum(self.needed)


def plan_chunks(length: int, chunk_size: int, num_overlap: int, window_batch_size: int) -> ChunkPlan:
    """The reference chunking for ``length`` samples (see the module docstring)."""
    if length < 1:
        raise ValueError("cannot separate an empty track")
    step = chunk_size // num_overlap
    fade = chunk_size // 10
    border = chunk_size - step
    pad = border if (length > 2 * border and border > 0) else 0
    total = length + 2 * pad
    starts = list(range(0, total, step))
    chunks: list[Chunk] = []
    for first in range(0, len(starts), window_batch_size):
        batch = starts[first : first + window_batch_size]
        last = batch[-1]
        only_first = last == 0
        is_final = not only_first and last + step >= total
        for s in batch:
            chunks.append(Chunk(s, min(chunk_size, total - s), fade_in=not only_first, fade_out=not is_final))
    keep_lo, keep_hi = pad, total - pad
    needed = tuple(c.start < keep_hi and c.start + c.length > keep_lo for c in chunks)
    return ChunkPlan(chunk_size, step, fade, pad, total, tuple(chunks), needed)


def fade_window(chunk_size: int, fade: int) -> Tensor:
    """Ones with linear ramps of ``fade`` samples at both ends (fade-in written last, as in the reference)."""
    window = torch.ones(chunk_size)
    if fade > 0:
        window[-fade:] = torch.linspace(1, 0, fade)
        window[:fade] = torch.linspace(0, 1, fade)
    return window


def _chunk_input(signal: Tensor, chunk: Chunk, chunk_size: int) -> Tensor:
    part = signal[:, chunk.start : chunk.start + chunk_size]
    missing = chunk_size - part.shape[-1]
    if missing == 0:
        return part
    if part.shape[-1] > chunk_size // 2:
        return F.pad(part, (0, missing), mode="reflect")
    return F.pad(part, (0, missing))


def demix(
    model: Callable[[Tensor], Tensor],
    mix: Tensor,
    *,
    chunk_size: int,
    num_overlap: int,
    window_batch_size: int,
    run_batch_size: int = 1,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> Tensor:
    """Run ``model`` over ``mix`` (channels, samples) chunk by chunk; return (stems, channels, samples).

    ``model`` maps ``(batch, channels, chunk_size)`` to ``(batch, stems, channels, chunk_size)``.
    Results are accumulated in float32 on the CPU, in the reference's chunk order.
    """
    mix = torch.as_tensor(mix, dtype=torch.float32).cpu()
    length = mix.shape[-1]
    plan = plan_chunks(length, chunk_size, num_overlap, window_batch_size)
    signal = F.pad(mix, (plan.border, plan.border), mode="reflect") if plan.border else mix
    base = fade_window(chunk_size, plan.fade)
    windows = {
        (fi, fo): _window_variant(base, plan.fade, fade_in=fi, fade_out=fo) for fi in (0, 1) for fo in (0, 1)
    }
    todo = [c for c, need in zip(plan.chunks, plan.needed, strict=True) if need]
    result: Tensor | None = None
    counter = torch.zeros(plan.padded_length)
    done = 0
    for first in range(0, len(todo), max(1, run_batch_size)):
        batch = todo[first : first + max(1, run_batch_size)]
        inputs = torch.stack([_chunk_input(signal, c, chunk_size) for c in batch]).to(device)
        outputs = model(inputs).float().cpu()
        if result is None:
            result = torch.zeros((outputs.shape[1], mix.shape[0], plan.padded_length))
        for chunk, out in zip(batch, outputs, strict=True):
            win = windows[(int(chunk.fade_in), int(chunk.fade_out))][: chunk.length]
            span = slice(chunk.start, chunk.start + chunk.length)
            result[..., span] += out[..., : chunk.length] * win
            counter[span] += win
        done += len(batch)
        report(done, len(todo), "separating")
        if progress is not None:
            progress(done, len(todo))
    assert result is not None
    estimate = torch.nan_to_num(result / counter, nan=0.0)
    if plan.border:
        estimate = estimate[..., plan.border : plan.border + length]
    return estimate


def _window_variant(base: Tensor, fade: int, *, fade_in: bool, fade_out: bool) -> Tensor:
    window = base.clone()
    if fade > 0:
        if not fade_in:
            window[:fade] = 1
        if not fade_out:
            window[-fade:] = 1
    return window
