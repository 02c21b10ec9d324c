"""``deepsound experiment VIDEOS --reference GT -o DIR``: the paper's table in one command.

Takes every pipeline option ``generate`` takes (``--preset paper`` is the paper's
configuration: VideoLLaMA2-CoT plans and judges, MMAudio large_44k, s4), plus the backends
to compare: ``--generator mmaudio:small_44k,mmaudio:large_44k,foleycrafter`` (registered
generator names, each with an optional variant) or, in the ``--config`` file::

    [experiment]
    generators = ["mmaudio:small_44k", "mmaudio:large_44k"]
    settings = ["direct", "s3", "s4-neg"]   # optional; default all

GT is the Ori-Set (the test set's audio as it is); the VO-Free set is built from it by
the configured judge and separator (or given with ``--vo-free``). Everything stays in DIR,
so an interrupted experiment resumes where it stopped; ``--ray`` spreads the generations,
the reference set and the feature extraction over Ray workers.
"""

from __future__ import annotations

import dataclasses
import inspect
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from deepsound import registry
from deepsound.cli.options import pipeline_options
from deepsound.cli.ray_options import GpusPerWorker, Ray, Workers, ray_settings
from deepsound.errors import ConfigError
from deepsound.settings import Settings

SETTINGS_HELP = "direct, direct-neg, s3, s4-rm, s4-rep, s4-neg (comma-separated; default all)"
EXPERIMENT_KEYS = ("generators", "settings")


def _command(
    videos: Annotated[
        Path, typer.Argument(help="Folder of videos, text file of paths, or CSV path[,prompt].")
    ],
    reference: Annotated[
        Path,
        typer.Option(
            "--reference", help="Ori-Set: folder of reference audio/video, or an av-benchmark cache."
        ),
    ],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Experiment folder.")],
    vo_free: Annotated[
        Path | None,
        typer.Option(
            "--vo-free", help="A VO-Free set made by `deepsound reference build` (default: built in DIR)."
        ),
    ] = None,
    setting: Annotated[list[str] | None, typer.Option("--setting", help=SETTINGS_HELP)] = None,
    metrics: Annotated[list[str] | None, typer.Option("--metrics", help="Subset of the metrics.")] = None,
    ray: Ray = None,
    workers: Workers = None,
    gpus_per_worker: GpusPerWorker = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    *,
    settings: Settings,
    backends: list[str] | None = None,
    experiment: dict[str, Any] | None = None,
) -> None:
    """Run the paper's settings over VIDEOS for each backend and write its table."""
    from rich.console import Console

    from deepsound.batch import read_inputs
    from deepsound.cli import options
    from deepsound.cli.app import err_console, setup_logging
    from deepsound.cli.evaluate import DEFAULT_METRICS, progress_bars
    from deepsound.evaluation.experiment import SETTINGS, Backend, check_settings, parse_backends
    from deepsound.evaluation.experiment_run import run_experiment
    from deepsound.evaluation.extractors import Settings as EvalSettings
    from deepsound.evaluation.paper_table import write_table
    from deepsound.evaluation.runner import check_metrics
    from deepsound.weights.loading import resolve_device

    setup_logging(quiet)
    experiment = experiment or {}
    if not reference.exists():
        raise ConfigError(f"{reference}: no such reference folder")
    chosen = tuple(
        s.strip()
        for item in (setting or experiment.get("settings") or [",".join(SETTINGS)])
        for s in item.split(",")
        if s.strip()
    )
    check_settings(chosen)
    chosen_metrics = tuple(check_metrics(metrics or [DEFAULT_METRICS]))
    base = settings.pipeline.generator
    default = Backend(base.name, getattr(base.selected, "variant", None))
    parsed = parse_backends(backends or experiment.get("generators"), default)
    rayed = ray_settings(ray, workers, gpus_per_worker)
    items = read_inputs(videos)
    pipelines = {}
    for backend in parsed:
        config = dataclasses.replace(settings.pipeline, generator=generator_section(base, backend))
        pipelines[backend] = options.build_pipeline(Settings(config, settings.run))
    duration = settings.run.duration or 10.0
    eval_settings = EvalSettings(
        duration=duration, device=resolve_device(settings.pipeline.device),
        weights_dir=settings.pipeline.weights_dir, offline=settings.pipeline.offline,
        pipeline=settings.pipeline,
    )  # fmt: skip
    # On Ray each phase shows its own bar over all workers (rich allows one live display at a time).
    progress, factory = progress_bars(err_console, quiet or rayed is not None)
    with progress:
        task = progress.add_task("generate", total=len(items) * len(parsed))
        table = run_experiment(
            [i.video for i in items], reference, output_dir, pipelines, settings.run, vo_free=vo_free,
            settings=chosen, eval_settings=eval_settings, metrics=chosen_metrics, progress=factory,
            on_clip=lambda _: progress.advance(task), videos_dir=videos if videos.is_dir() else None,
            prompts={i.video.stem: i.prompt for i in items if i.prompt}, ray=rayed, console=err_console,
            quiet=quiet,
        )  # fmt: skip
    paths = write_table(table, output_dir)
    out = Console()
    out.print(paths["markdown"].read_text(encoding="utf-8"), highlight=False, markup=False)
    for kind, path in paths.items():
        out.print(f"{kind}: {path}", highlight=False, markup=False)


def generator_section(base: Any, backend: Any) -> Any:
    """The generator section of one backend: its component, with the settings the configuration
    gives it (its defaults otherwise) and the backend's variant."""
    from deepsound import registry
    from deepsound.config import Section

    settings = dict(base.settings)
    if backend.variant:
        current = settings.get(backend.name) or registry.entry("generator", backend.name).default_settings()
        if current is None or not hasattr(current, "variant"):
            raise ConfigError(f"generator {backend.name!r} has no variants; give it as {backend.name!r}")
        settings[backend.name] = dataclasses.replace(current, variant=backend.variant)
    return Section("generator", backend.name, settings)


def _split_config(config_file: Path | None, folder: str) -> tuple[Path | None, dict[str, Any]]:
    """The ``[experiment]`` table of a settings file, and the file without it (for the pipeline)."""
    if config_file is None:
        return None, {}
    import tomli_w

    from deepsound.settings import read_toml

    data = read_toml(config_file)
    experiment = data.pop("experiment", None)
    if experiment is None:
        return config_file, {}
    unknown = sorted(set(experiment) - set(EXPERIMENT_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in the experiment table; known: {', '.join(EXPERIMENT_KEYS)}"
        )
    rest = Path(folder) / config_file.name
    rest.write_text(tomli_w.dumps(data), encoding="utf-8")
    return rest, experiment


_with_options = pipeline_options(_command)


def experiment_command(*args: Any, **kwargs: Any) -> None:
    # The shared --generator names one generator; here it lists the backends of the table, so it
    # is taken before the pipeline settings are made (each backend gets its own generator).
    backends = kwargs.pop("generator", None)
    with tempfile.TemporaryDirectory(prefix="deepsound-experiment-") as folder:
        kwargs["config_file"], experiment = _split_config(kwargs.get("config_file"), folder)
        _with_options(*args, generator=None, backends=[backends] if backends else None,
                      experiment=experiment, **kwargs)  # fmt: skip


# The command line shows the shared options and the command's own, not the two internal inputs;
# like every command with pipeline options it follows the registry (a component registered later
# brings its options here too).
_BACKENDS = Annotated[
    str | None,
    typer.Option("--generator", show_default=False, help="Backends of the table: registered generator names, "
                 "each with an optional :variant, comma-separated (e.g. mmaudio:small_44k,mmaudio:large_44k,"
                 "foleycrafter); default: the configured generator."),
]  # fmt: skip


def _publish() -> None:
    signature = inspect.signature(_with_options)
    public = [
        p.replace(annotation=_BACKENDS) if p.name == "generator" else p
        for p in signature.parameters.values()
        if p.name not in ("backends", "experiment")
    ]
    experiment_command.__signature__ = signature.replace(parameters=public)  # type: ignore[attr-defined]
    experiment_command.__annotations__ = {p.name: p.annotation for p in public}


experiment_command.__doc__ = _command.__doc__
_publish()
registry.on_change(_publish)
