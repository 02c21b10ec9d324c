"""``deepsound generate VIDEO -o DIR``: the whole method on one video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from deepsound.cli.app import setup_logging
from deepsound.cli.options import pipeline_options
from deepsound.settings import Settings

OutDir = Annotated[Path, typer.Option("--output-dir", "-o", help="Output folder.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")]


@pipeline_options
def generate_command(
    video: Annotated[Path, typer.Argument(help="Input video.")],
    output_dir: OutDir = Path("outputs"),
    quiet: Quiet = False,
    *,
    settings: Settings,
) -> None:
    """Generate a soundtrack for VIDEO, judge and remove voice-over, check silence."""
    setup_logging(quiet)
    import deepsound.cli.options as options
    from deepsound.files import check_output_dir
    from deepsound.input_check import check_input

    # inputs first, then the weight files, then the load: a corrupt video is never answered
    # with a weights message
    check_input(video, settings.run, settings.pipeline)
    check_output_dir(output_dir)
    pipeline = options.build_pipeline(settings)
    result = pipeline.run(video, output_dir, settings.run)
    out = Console()
    for kind, path in result.outputs.items():
        out.print(f"{kind}: {path}", highlight=False, markup=False)
    if result.audio is None:
        out.print("final audio: removed (rm fallback: what was left was silent)")
