"""``deepsound batch INPUT -o DIR``: ``generate`` over many videos with models loaded once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deepsound.cli.app import err_console, setup_logging
from deepsound.cli.generate import OutDir, Quiet
from deepsound.cli.options import pipeline_options
from deepsound.cli.text import plain
from deepsound.settings import Settings


@pipeline_options
def batch_command(
    inputs: Annotated[
        Path, typer.Argument(help="Folder of videos, text file of paths, or CSV path[,prompt].")
    ],
    output_dir: OutDir = Path("outputs"),
    shard: Annotated[
        str | None, typer.Option(help="K/N: this worker's share of the list (every N-th from K).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Redo clips whose outputs exist.")] = False,
    ray: Annotated[
        str | None,
        typer.Option("--ray", help="Run on Ray: auto (the running cluster), local, or ADDRESS (host:port)."),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Ray workers (default: as many as fit).")] = None,
    gpus_per_worker: Annotated[
        float | None, typer.Option(help="GPUs per Ray worker (0.5 shares one; 0: CPU workers).")
    ] = None,
    quiet: Quiet = False,
    *,
    settings: Settings,
) -> None:
    """Run many clips with models loaded once; skip finished clips, go on past bad ones."""
    setup_logging(quiet)
    import deepsound.cli.options as options
    from deepsound.batch import parse_shard, read_inputs, run_batch
    from deepsound.files import check_output_dir

    items = read_inputs(inputs)
    shard_spec = parse_shard(shard)
    check_output_dir(output_dir)
    pipeline = options.build_pipeline(settings)
    total = len(items[shard_spec[0] :: shard_spec[1]])
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    if ray is not None:
        from deepsound.distributed.console import batch_on_ray

        summary = batch_on_ray(
            pipeline, items, output_dir, settings.run, address=ray, workers=workers,
            gpus_per_worker=gpus_per_worker, overwrite=overwrite, shard=shard_spec, console=err_console,
            quiet=quiet,
        )  # fmt: skip
    else:
        with Progress(*columns, console=err_console, disable=quiet) as progress:
            task = progress.add_task("clips", total=total)
            summary = run_batch(
                pipeline, items, output_dir, settings.run, shard=shard_spec, overwrite=overwrite,
                on_item=lambda outcome: progress.advance(task),
            )  # fmt: skip
    table = Table(
        title=f"batch: {summary.count('done')} done, {summary.count('skipped')} skipped, "
        f"{summary.count('failed')} failed"
    )
    for column in ("video", "status", "voice-over", "fallback", "MLLM calls", "seconds / reason"):
        table.add_column(column)
    for item in summary.items:
        vo = "" if item.has_voice_over is None else ("yes" if item.has_voice_over else "no")
        detail = item.reason if item.status != "done" else f"{item.seconds:.1f}"
        table.add_row(
            plain(Path(item.video).name),
            item.status,
            vo,
            item.fallback or "",
            str(item.mllm_calls),
            plain(detail),
        )
    Console().print(table)
    if summary.count("failed"):
        raise typer.Exit(1)
