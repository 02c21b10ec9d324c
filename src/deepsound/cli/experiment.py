"""``deepsound experiment VIDEOS --reference GT -o DIR``: the paper's table in one command.

Runs the step loop once per video (the step-1 audio is shared by Direct, s3
and s4), derives Direct, Direct-neg, s3 and s4 with rm / rep / neg, evaluates
each with ``deepsound evaluate``'s machinery and prints the paper-style table
with the relative improvement of each setting over Direct. Everything stays
in DIR (runs, per-setting folders, evaluations, caches), so an interrupted
experiment resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from deepsound.errors import ConfigError

SETTINGS_HELP = "direct, direct-neg, s3, s4-rm, s4-rep, s4-neg (comma-separated; default all)"


def experiment_command(
    videos: Annotated[
        Path, typer.Argument(help="Folder of videos, text file of paths, or CSV path[,prompt].")
    ],
    reference: Annotated[
        Path, typer.Option("--reference", help="Folder of reference audio/video, or an av-benchmark cache.")
    ],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Experiment folder.")],
    generator: Annotated[str, typer.Option(help="Step-1 generator (a registered name).")] = "mmaudio",
    variant: Annotated[
        str | None, typer.Option(help="MMAudio variant (default: the generator's own).")
    ] = None,
    setting: Annotated[list[str] | None, typer.Option("--setting", help=SETTINGS_HELP)] = None,
    duration: Annotated[float, typer.Option(help="Seconds generated and evaluated per clip.")] = 10.0,
    judge: Annotated[str, typer.Option(help="Voice-over judge: cascade, mllm, speech.")] = "cascade",
    mllm: Annotated[str | None, typer.Option(help="Audio-visual LLM (a registered name).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (shared by all settings).")] = 42,
    num_steps: Annotated[int, typer.Option("--steps", help="Flow-matching Euler steps.")] = 25,
    cfg_strength: Annotated[float, typer.Option("--cfg", help="Classifier-free guidance strength.")] = 4.5,
    metrics: Annotated[list[str] | None, typer.Option("--metrics", help="Subset of the metrics.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda …")] = "auto",
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with the weights.")] = None,
    offline: Annotated[bool, typer.Option(help="Never download.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Run the paper's settings over VIDEOS and print its table (with changes relative to Direct)."""
    from deepsound.batch import read_inputs
    from deepsound.cli.app import err_console, setup_logging
    from deepsound.cli.evaluate import DEFAULT_METRICS, progress_bars
    from deepsound.config import GeneratorConfig, MllmConfig, PipelineConfig, RunOptions
    from deepsound.evaluation.experiment import SETTINGS, run_experiment, write_summary
    from deepsound.evaluation.extractors import Settings
    from deepsound.evaluation.runner import check_metrics
    from deepsound.pipeline import Pipeline
    from deepsound.weights.loading import resolve_device

    setup_logging(quiet)
    if not reference.exists():
        raise ConfigError(f"{reference}: no such reference folder")
    chosen = tuple(
        s.strip() for item in (setting or [",".join(SETTINGS)]) for s in item.split(",") if s.strip()
    )
    unknown = [s for s in chosen if s not in SETTINGS]
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; choose from: {', '.join(SETTINGS)}")
    items = read_inputs(videos)
    pipeline = Pipeline(
        PipelineConfig(
            generator=GeneratorConfig(generator, **({"variant": variant} if variant else {})),
            device=device,
            weights_dir=weights_dir,
            offline=offline,
            judge=judge,
            **({"mllm": MllmConfig(mllm)} if mllm else {}),
        )
    )
    options = RunOptions(duration=duration, seed=seed, num_steps=num_steps, cfg_strength=cfg_strength)
    eval_settings = Settings(
        duration=duration, device=resolve_device(device), weights_dir=weights_dir, offline=offline
    )
    progress, factory = progress_bars(err_console, quiet)
    with progress:
        task = progress.add_task("generate", total=len(items))
        result = run_experiment(
            [i.video for i in items], reference, output_dir, pipeline, options, settings=chosen,
            eval_settings=eval_settings, metrics=tuple(check_metrics(metrics or [DEFAULT_METRICS])),
            progress=factory, on_clip=lambda _: progress.advance(task),
            videos_dir=videos if videos.is_dir() else None,
            prompts={i.video.stem: i.prompt for i in items if i.prompt},
        )  # fmt: skip
    table = write_summary(result, output_dir)
    out = Console()
    out.print(table, highlight=False, markup=False)
    for failure in result.failures:
        out.print(f"failed {Path(failure['video']).name}: {failure['reason']}", highlight=False, markup=False)
    out.print(f"table: {output_dir / 'experiment.md'}", highlight=False, markup=False)
