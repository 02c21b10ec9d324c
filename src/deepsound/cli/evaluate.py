"""``deepsound evaluate PRED --reference GT -o OUT``: the paper's metrics, as av-benchmark computes them.

PRED and GT are folders of audio or video files paired by stem (a
``deepsound batch`` output folder works as PRED as it is); GT may also be a
released av-benchmark cache folder. ``--videos`` (default: GT when it holds
videos) enables IB-score and DeSync. Features are cached in av-benchmark's
format under OUT/cache, so a second run only extracts new or changed files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deepsound.cli.ray_options import GpusPerWorker, Ray, Workers, ray_settings
from deepsound.errors import ConfigError

DEFAULT_METRICS = "fd_passt,fd_panns,fd_vgg,kl_panns,kl_passt,is_panns,ib_score,desync,voice_over_rate"


def progress_bars(console: Console, quiet: bool):  # noqa: ANN201
    """A rich progress display and a factory of per-model bars for the runner."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=quiet,
    )  # fmt: skip

    def factory(label: str, total: int):  # noqa: ANN202
        task = progress.add_task(label, total=total)
        return lambda: progress.advance(task)

    return progress, factory


def print_summary(evaluation, out_paths: dict[str, Path]) -> None:  # noqa: ANN001
    from deepsound.evaluation.report import COLUMNS, fmt, scores_of

    scores = scores_of(evaluation)
    table = Table(title="evaluation")
    for _, header, _ in COLUMNS:
        table.add_column(header)
    table.add_row(*(fmt(scores.get(k), k) for k, _, _ in COLUMNS))
    out = Console()
    out.print(table)
    for f in evaluation.failures:
        out.print(f"skipped {Path(f.path).name} ({f.model}): {f.reason}", highlight=False, markup=False)
    for kind, path in out_paths.items():
        out.print(f"{kind}: {path}", highlight=False, markup=False)


def evaluate_command(
    pred: Annotated[Path, typer.Argument(help="Folder of generated audio/video files (or batch output).")],
    reference: Annotated[
        Path, typer.Option("--reference", help="Folder of reference audio/video, or an av-benchmark cache.")
    ],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Output folder.")],
    videos: Annotated[
        Path | None, typer.Option(help="Folder of the videos (IB-score, DeSync); default: GT if videos.")
    ] = None,
    duration: Annotated[
        float, typer.Option(help="Seconds evaluated per clip (av-benchmark's audio_length).")
    ] = 10.0,
    metrics: Annotated[
        list[str] | None, typer.Option("--metrics", help=f"Comma-separated subset of: {DEFAULT_METRICS}.")
    ] = None,
    reference_cache: Annotated[
        Path | None,
        typer.Option(help="Where the reference features are cached (default OUT/cache/reference)."),
    ] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder holding the evaluation weights.")] = None,
    offline: Annotated[bool, typer.Option(help="Never download; fail with a clear message instead.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda …")] = "auto",
    speech: Annotated[
        str | None,
        typer.Option(
            help="Speech detector of the voice-over rate (the method's gate): staged, silero, ten, fused, "
            "vocal-stem, or a registered name. (default: the configured one)"
        ),
    ] = None,
    ray: Ray = None,
    workers: Workers = None,
    gpus_per_worker: GpusPerWorker = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Measure what the paper measures: FD, KL, IS, IB-score, DeSync, and the voice-over rate.

    With ``--ray`` the feature extraction is spread over Ray workers (one model set each,
    every file once, resumable); the metrics are then computed here from the caches.
    """
    from deepsound.cli.app import err_console, setup_logging
    from deepsound.evaluation.extractors import Settings
    from deepsound.evaluation.report import write_report
    from deepsound.evaluation.runner import check_metrics, evaluate
    from deepsound.weights.loading import resolve_device

    setup_logging(quiet)
    for what, path in (("generated folder", pred), ("reference", reference), ("videos folder", videos)):
        if path is not None and not path.is_dir():
            raise ConfigError(f"{path}: {what} is not a folder")
    if not duration > 0:
        raise ConfigError(f"duration must be positive, got {duration}")
    chosen = check_metrics(metrics or [DEFAULT_METRICS])
    pipeline = None
    if speech is not None:
        from deepsound import registry
        from deepsound.config import PipelineConfig, SpeechConfig

        registry.entry("speech", speech)  # an unknown name is a one-line error before anything loads
        pipeline = PipelineConfig(speech=SpeechConfig(speech), weights_dir=weights_dir, offline=offline)
    settings = Settings(
        duration=duration, device=resolve_device(device), weights_dir=weights_dir, offline=offline,
        pipeline=pipeline,
    )  # fmt: skip
    rayed = ray_settings(ray, workers, gpus_per_worker)
    extractors = None
    if rayed is not None:
        from deepsound.evaluation.distributed_features import extract_on_ray, sides_for_evaluation

        sides = sides_for_evaluation(pred, reference, videos, output_dir, chosen, None, reference_cache)
        extractors = extract_on_ray(sides, settings, rayed, console=err_console, quiet=quiet)
    progress, factory = progress_bars(err_console, quiet)
    with progress:
        evaluation = evaluate(
            pred, reference, videos=videos, out_dir=output_dir, settings=settings, metrics=chosen,
            reference_cache=reference_cache, progress=factory, extractors=extractors,
        )  # fmt: skip
    paths = write_report(evaluation, output_dir, name=pred.name)
    print_summary(evaluation, paths)
