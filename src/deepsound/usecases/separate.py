"""Step 3 alone, on a file the user already has: the voice taken out of any audio or video file.

Writes ``<name>.instrumental.wav`` (what is kept), ``<name>.vocals.wav`` (what was
removed) and ``<name>.separation.json`` (levels and settings). For a video,
``<name>.instrumental.<ext>`` also gets the instrumental muxed back onto the
untouched (stream-copied) pictures. Every file is written atomically; existing
outputs are left alone unless ``overwrite`` is given. ``deepsound separate`` and the
page's Remove voice tab both call :func:`separate_file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepsound.audio import Audio
from deepsound.errors import MediaError, OutputError
from deepsound.interfaces import Separator
from deepsound.media.kinds import MUX_SUFFIXES


def output_paths(input_path: Path, output_dir: Path, has_video: bool) -> dict[str, Path]:
    """Where each result of separating ``input_path`` goes."""
    stem = input_path.stem
    paths = {
        "instrumental": output_dir / f"{stem}.instrumental.wav",
        "vocals": output_dir / f"{stem}.vocals.wav",
        "evidence": output_dir / f"{stem}.separation.json",
    }
    if has_video:
        suffix = input_path.suffix.lower() if input_path.suffix.lower() in MUX_SUFFIXES else ".mp4"
        paths["video"] = output_dir / f"{stem}.instrumental{suffix}"
    return paths


def check_input(
    input_path: Path, output_dir: Path, *, overwrite: bool = False
) -> tuple[Any, dict[str, Path]]:
    """Fail early (before any model loads) on a bad input, an unwritable folder or existing outputs."""
    from deepsound.files import ensure_dir
    from deepsound.media import probe
    from deepsound.media._open import check_input_path

    input_path = Path(input_path)
    if not input_path.exists():
        if input_path.is_symlink():  # a loop or a broken link: say which
            check_input_path(input_path)
        raise MediaError(f"{input_path}: no such file")
    info = probe(input_path)
    if not info.has_audio:
        raise MediaError(f"{input_path}: has no audio stream; there is no voice to remove")
    ensure_dir(Path(output_dir))
    paths = output_paths(input_path, Path(output_dir), info.has_video)
    if not overwrite:
        existing = [p for p in paths.values() if p.exists()]
        if existing:
            raise OutputError(f"{existing[0]}: already exists; pass --overwrite to replace it")
    return info, paths


def separate_file(
    separator: Separator, input_path: Path, output_dir: Path, *, overwrite: bool = False
) -> dict[str, Path]:
    """Separate one file and write its results; returns what was written, by kind."""
    from deepsound.files import write_json
    from deepsound.media import mux_audio, read_audio, write_audio

    input_path = Path(input_path)
    info, paths = check_input(input_path, output_dir, overwrite=overwrite)
    audio = read_audio(input_path)
    separation = separator.separate(audio)
    write_audio(paths["instrumental"], separation.instrumental)
    write_audio(paths["vocals"], separation.vocals)
    if info.has_video:
        mux_audio(input_path, _muxable(separation.instrumental), paths["video"])
    write_json(
        paths["evidence"],
        {
            "input": str(input_path),
            "separator": separator.name,
            "duration": round(audio.duration, 3),
            "sample_rate": audio.sample_rate,
            "channels": audio.num_channels,
            # the separator may keep its own rate and channels (BS-RoFormer's output_format = "model")
            "output_sample_rate": separation.instrumental.sample_rate,
            "output_channels": separation.instrumental.num_channels,
            "evidence": separation.evidence,
            "outputs": {k: str(v) for k, v in paths.items() if k != "evidence"},
        },
    )
    return paths


def _muxable(audio: Audio) -> Audio:
    """AAC in our muxer takes mono or stereo; fold anything wider to stereo-compatible mono."""
    return audio if audio.num_channels <= 2 else audio.to_mono()
