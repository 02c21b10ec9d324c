"""``deepsound separate INPUT -o DIR``: step 3 alone, on a file the user already has.

Takes the voice out of any audio or video file with BS-RoFormer and writes
``<name>.instrumental.wav`` (what is kept), ``<name>.vocals.wav`` (what was
removed) and ``<name>.separation.json`` (levels and settings). For a video,
``<name>.instrumental.<ext>`` also gets the instrumental muxed back onto the
untouched (stream-copied) pictures. Every file is written atomically; existing
outputs are left alone unless ``--overwrite`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deepsound.errors import MediaError, OutputError
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

    input_path = Path(input_path)
    if not input_path.exists():
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
    separator: Any, input_path: Path, output_dir: Path, *, overwrite: bool = False
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
            "evidence": separation.evidence,
            "outputs": {k: str(v) for k, v in paths.items() if k != "evidence"},
        },
    )
    return paths


def _muxable(audio: Any) -> Any:
    """AAC in our muxer takes mono or stereo; fold anything wider to stereo-compatible mono."""
    return audio if audio.num_channels <= 2 else audio.to_mono()


def separate_command(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Audio or video file to take the voice out of.")
    ],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Output folder.")] = Path("outputs"),
    weights_dir: Annotated[
        Path | None,
        typer.Option(help="Folder holding the BS-RoFormer checkpoint (ext_weights/ layout or flat)."),
    ] = None,
    offline: Annotated[bool, typer.Option(help="Never download; fail with a clear message instead.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 …")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto (bf16 on CUDA, fp32 on CPU), float32 or bfloat16.")
    ] = "auto",
    only_speech: Annotated[
        bool, typer.Option(help="Remove voice only around detected speech; keep the rest untouched.")
    ] = False,
    batch_size: Annotated[
        int | None, typer.Option(help="Chunks per forward pass (default: 1 on CPU, 4 on CUDA).", min=1)
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace outputs that already exist.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
) -> None:
    """Take the voice out of INPUT: write the instrumental, the vocals and, for a video, the muxed video."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from deepsound.cli.app import err_console, setup_logging
    from deepsound.config import PipelineConfig, SeparatorConfig
    from deepsound.registry import Components

    setup_logging(quiet)
    check_input(input_path, output_dir, overwrite=overwrite)
    config = PipelineConfig(
        device=device, dtype=dtype, weights_dir=weights_dir, offline=offline,
        separator=SeparatorConfig(only_speech=only_speech, batch_size=batch_size),
    )  # fmt: skip
    separator = Components(config).separator
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=quiet) as progress:
        task = progress.add_task(f"separating {input_path.name}", total=None)
        separator.progress = lambda done, total: progress.update(task, completed=done, total=total)
        paths = separate_file(separator, input_path, output_dir, overwrite=overwrite)
    out = Console()
    for kind, path in paths.items():
        out.print(f"{kind}: {path}", highlight=False, markup=False)
