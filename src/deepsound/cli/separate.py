"""``deepsound separate INPUT -o DIR``: step 3 alone, on a file the user already has.

The options and the progress bar; the work is :func:`deepsound.usecases.separate.separate_file`
(shared with the web page's Remove voice tab).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deepsound.usecases.separate import check_input, output_paths, separate_file

__all__ = ["check_input", "output_paths", "separate_command", "separate_file"]


def separate_command(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Audio or video file to take the voice out of.")
    ],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Output folder.")] = Path("outputs"),
    separator_name: Annotated[
        str,
        typer.Option(
            "--separator",
            help="bs_roformer (the paper's; weights from a model host) or htdemucs (weights from the npm registry).",
        ),
    ] = "bs_roformer",
    weights_dir: Annotated[
        Path | None,
        typer.Option(help="Folder holding the separator's weights (ext_weights/ layout or flat)."),
    ] = None,
    offline: Annotated[bool, typer.Option(help="Never download; fail with a clear message instead.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 …")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto (bf16 on CUDA, fp32 on CPU), float32 or bfloat16.")
    ] = "auto",
    only_speech: Annotated[
        bool,
        typer.Option(
            help="Remove voice only around detected speech; keep the rest untouched (bs_roformer only)."
        ),
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Chunks per forward pass (default: 1 on CPU, 4 on CUDA; bs_roformer only).", min=1),
    ] = None,
    resample_quality: Annotated[
        str,
        typer.Option(help="soxr quality to the model's 44.1 kHz: VHQ, or HQ (librosa's, the reference's)."),
    ] = "VHQ",
    output_format: Annotated[
        str,
        typer.Option(
            help="input: results at the input's rate and channels; model: 44.1 kHz stereo, as the reference "
            "(bs_roformer only)."
        ),
    ] = "input",
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
    chosen = SeparatorConfig(
        separator_name,
        **_options_for(
            separator_name,
            {  # option: (value given, the command's default)
                "only_speech": (only_speech, False),
                "batch_size": (batch_size, None),
                "resample_quality": (resample_quality, "VHQ"),
                "output_format": (output_format, "input"),
            },
        ),
    )
    config = PipelineConfig(
        device=device, dtype=dtype, weights_dir=weights_dir, offline=offline, separator=chosen
    )
    separator = Components(config).separator
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=quiet) as progress:
        task = progress.add_task(f"separating {input_path.name}", total=None)
        separator.progress = lambda done, total: progress.update(task, completed=done, total=total)
        paths = separate_file(separator, input_path, output_dir, overwrite=overwrite)
    out = Console()
    for kind, path in paths.items():
        out.print(f"{kind}: {path}", highlight=False, markup=False)


def _options_for(name: str, options: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """The command's options that separator ``name``'s settings hold.

    An option its settings lack is refused when it was given (not at the command's
    default), naming the separators that hold it, rather than silently dropped.
    """
    from dataclasses import fields

    from deepsound.errors import ConfigError
    from deepsound.registry import entries, entry

    def held(settings: type | None) -> set[str]:
        return {f.name for f in fields(settings)} if settings is not None else set()

    mine = held(entry("separator", name).settings)
    refused = [key for key, (value, default) in options.items() if key not in mine and value != default]
    if refused:
        flags = ", ".join("--" + key.replace("_", "-") for key in refused)
        owners = [e.name for e in entries("separator") if refused[0] in held(e.settings)]
        raise ConfigError(f"{flags}: {' and '.join(owners) or 'other separators'}'s options, not {name}'s")
    return {key: value for key, (value, _) in options.items() if key in mine}
