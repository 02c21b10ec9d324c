"""``deepsound reference build GT -o VOFREE``: the paper's VO-Free reference set, by the method itself.

GT is the test set's reference folder (videos with their sound, or audio files with
``--videos``). The configured judge (``--preset paper``: VideoLLaMA2-CoT, as the paper)
decides per clip whether its own audio holds voice-over; the configured separator removes
it. VOFREE then holds one WAV per clip, the removed vocals, every verdict with its evidence
and a manifest; a second run redoes only clips whose source or method changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepsound.cli.options import pipeline_options
from deepsound.cli.ray_options import GpusPerWorker, Ray, Workers, ray_settings
from deepsound.settings import Settings

reference_app = typer.Typer(no_args_is_help=True, help="Reference sets for the evaluation (VO-Free).")


@pipeline_options
def build_command(
    reference: Annotated[Path, typer.Argument(help="Reference folder: videos with sound, or audio files.")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="The VO-Free set's folder.")],
    videos: Annotated[
        Path | None, typer.Option(help="Videos paired by stem, when GT holds audio files only.")
    ] = None,
    ray: Ray = None,
    workers: Workers = None,
    gpus_per_worker: GpusPerWorker = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    *,
    settings: Settings,
) -> None:
    """Judge each reference clip's own audio and remove the voice-over where the judge hears it."""
    from rich.console import Console

    from deepsound.cli import options
    from deepsound.cli.app import err_console, setup_logging
    from deepsound.cli.evaluate import progress_bars
    from deepsound.evaluation.reference_set import build_reference_set

    setup_logging(quiet)
    pipeline = options.build_pipeline(settings)
    rayed = ray_settings(ray, workers, gpus_per_worker)
    progress, _ = progress_bars(err_console, quiet or rayed is not None)  # on Ray: the pool's own bar
    with progress:
        task = progress.add_task("reference clips", total=None)
        manifest = build_reference_set(
            reference, output_dir, pipeline, videos=videos, ray=rayed, console=err_console, quiet=quiet,
            on_clip=lambda _: progress.advance(task),
        )  # fmt: skip
    counts, out = manifest["counts"], Console()
    out.print(
        f"VO-Free set: {counts['in_set']} clips, voice removed from {counts['voice_over']} "
        f"({manifest['method']['judge']} judge), {counts['failed']} failed, "
        f"{counts['mllm_calls']} MLLM calls: {output_dir}",
        highlight=False,
    )
    for failure in manifest["failures"]:
        out.print(f"failed {failure['stem']}: {failure['reason']}", highlight=False)
    if counts["failed"]:
        raise typer.Exit(1)
