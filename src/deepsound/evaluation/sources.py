"""Which files of a folder are evaluated, under which stem.

av-benchmark globs ``*.wav`` and ``*.flac`` and names every file by its stem;
videos are paired by stem too. We accept any audio or video file (the audio
track of a video is used), one file per stem, and understand a
``deepsound batch`` output folder as it is: there each clip has
``<name>.wav`` (the final audio), ``<name>.mp4``, ``<name>.trace.json`` and the
step intermediates (``<name>.step1.wav``, ``.step3.wav``, ``.step3.vocals.wav``,
``.neg.wav``), and a clip whose audio the ``rm`` fallback removed has only its
trace and a silent video: it is evaluated as silence, which is what a viewer hears.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from deepsound.errors import ConfigError
from deepsound.evaluation.features import Source
from deepsound.media.kinds import AUDIO_SUFFIXES, VIDEO_SUFFIXES

log = logging.getLogger(__name__)

INTERMEDIATES = (".step1", ".step3", ".step3.vocals", ".neg")
TRACE_SUFFIX = ".trace.json"


def load_raw(path: Path) -> tuple[torch.Tensor, int]:
    """All channels at the file's own rate, float32 in [-1, 1] as ``torchaudio.load`` returns them
    (integer PCM divided by its full scale), for audio files and the audio track of videos."""
    from deepsound.evaluation.audio import decode

    return decode(path)


@dataclass
class Discovery:
    sources: list[Source]
    ignored: list[str] = field(default_factory=list)  # files left out, with why
    batch_output: bool = False


def _stem_of(path: Path) -> str:
    name = path.name
    return name[: -len(TRACE_SUFFIX)] if name.endswith(TRACE_SUFFIX) else path.stem


def discover(folder: Path, *, prefer: str = "audio") -> Discovery:
    """The files of ``folder`` to evaluate, sorted by stem (av-benchmark's order, which IS depends on).

    ``prefer`` decides between an audio and a video file of the same stem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    traces = {_stem_of(p): p for p in files if p.name.endswith(TRACE_SUFFIX)}
    batch = bool(traces)
    out = Discovery([], batch_output=batch)
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        suffix = path.suffix.lower()
        if suffix not in AUDIO_SUFFIXES + VIDEO_SUFFIXES:
            continue
        if batch and any(path.stem.endswith(tag) for tag in INTERMEDIATES):
            out.ignored.append(f"{path.name}: step intermediate")
            continue
        by_stem.setdefault(path.stem, []).append(path)
    order = AUDIO_SUFFIXES + VIDEO_SUFFIXES if prefer == "audio" else VIDEO_SUFFIXES + AUDIO_SUFFIXES
    for stem in sorted(set(by_stem) | (set(traces) if batch else set())):
        candidates = sorted(by_stem.get(stem, []), key=lambda p: order.index(p.suffix.lower()))
        removed = _removed_duration(traces.get(stem)) if batch else None
        if removed is not None and not any(p.suffix.lower() in AUDIO_SUFFIXES for p in candidates):
            out.sources.append(Source(stem, traces[stem], silent_seconds=removed))
            continue
        if not candidates:
            continue
        out.sources.append(Source(stem, candidates[0], loader=load_raw))
        out.ignored += [f"{p.name}: same stem as {candidates[0].name}" for p in candidates[1:]]
    if not out.sources:
        raise ConfigError(f"{folder}: no audio or video files to evaluate")
    return out


def _removed_duration(trace: Path | None) -> float | None:
    """Seconds of silence for a batch clip whose audio the `rm` fallback removed, else None."""
    if trace is None:
        return None
    try:
        data = json.loads(trace.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    final = data.get("final") or {}
    if final.get("fallback") != "rm" or final.get("audio") is not None:
        return None
    duration = (data.get("options") or {}).get("duration")
    return float(duration) if duration else None
