"""``deepsound``: a thin command line over :class:`deepsound.pipeline.Pipeline`.

Every user mistake (missing file, corrupt video, missing weights offline,
unwritable folder) ends as one line on stderr and a non-zero exit code, never
a stack trace; see :mod:`deepsound.errors`.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deepsound.errors import DeepSoundError

app = typer.Typer(
    name="deepsound",
    help="Turn a silent video into a clean soundtrack, step by step (DeepSound-V1).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn :class:`DeepSoundError` into one red line and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DeepSoundError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def setup_logging(quiet: bool, verbose: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )


# Options shared by `generate` and `batch` (one definition, one set of defaults).
Variant = Annotated[
    str, typer.Option(help="MMAudio variant: small_16k, small_44k, medium_44k, large_44k, large_44k_v2.")
]
Mode = Annotated[str, typer.Option(help="s3 stops after voice removal; s4 also checks silence.")]
PostProcess = Annotated[
    str, typer.Option(help="When step 4 finds silence: rm (no audio), rep (step-1 audio), neg.")
]
JudgeOpt = Annotated[
    str, typer.Option(help="Voice-over judge: cascade (speech detector, then MLLM), mllm, speech.")
]
PlanOpt = Annotated[
    str, typer.Option(help="canonical (the paper's 4 steps, no MLLM) or mllm (ask for the plan).")
]
SilenceOpt = Annotated[str, typer.Option(help="Silence check: rms (signal rule) or mllm (ask).")]
Prompt = Annotated[str, typer.Option(help="Text prompt for generation.")]
NegPrompt = Annotated[str, typer.Option(help="Negative prompt for generation.")]
Duration = Annotated[float, typer.Option(help="Seconds of audio to generate (shortened to the video).")]
Whole = Annotated[bool, typer.Option("--whole", help="Generate for the whole video.")]
Window = Annotated[
    float | None,
    typer.Option(help="Generate longer audio in cross-faded windows of this many seconds (e.g. 8)."),
]
Seed = Annotated[int, typer.Option(help="Random seed (the neg fallback reuses it).")]
Steps = Annotated[int, typer.Option("--steps", help="Flow-matching Euler steps.")]
Cfg = Annotated[float, typer.Option("--cfg", help="Classifier-free guidance strength.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 …")]
Dtype = Annotated[str, typer.Option(help="auto (bf16 on CUDA, fp32 on CPU), float32 or bfloat16.")]
WeightsDir = Annotated[
    Path | None, typer.Option(help="Folder with weights/ and ext_weights/ (MMAudio layout).")
]
Offline = Annotated[bool, typer.Option(help="Never download; fail with a clear message instead.")]
MllmModel = Annotated[str, typer.Option(help="Hub id or local folder of the audio-visual LLM.")]
MllmAdapter = Annotated[
    Path | None, typer.Option(help="LoRA adapter from `deepsound finetune` for the MLLM.")
]
OnlySpeech = Annotated[bool, typer.Option(help="Remove voice only around detected speech.")]
NoVideo = Annotated[bool, typer.Option("--no-video", help="Write only the audio, not the muxed video.")]
NoInter = Annotated[bool, typer.Option("--no-intermediates", help="Do not keep each step's audio.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")]
OutDir = Annotated[Path, typer.Option("--output-dir", "-o", help="Output folder.")]


def _build(**settings: Any):  # noqa: ANN202
    from deepsound.config import PipelineConfig
    from deepsound.pipeline import Pipeline

    return Pipeline(PipelineConfig(**settings))


def _setup(cli_values: dict[str, Any]):  # noqa: ANN202
    """Split the options that `generate` and `batch` share into per-clip options and a pipeline."""
    from deepsound.config import RunOptions

    v = cli_values
    options = RunOptions(
        prompt=v["prompt"], negative_prompt=v["negative_prompt"], seed=v["seed"],
        duration=None if v["whole"] else v["duration"], window=v["window"],
        num_steps=v["num_steps"], cfg_strength=v["cfg_strength"], mode=v["mode"],
        postprocess=v["postprocess"], write_video=not v["no_video"],
        keep_intermediates=not v["no_intermediates"],
    )  # fmt: skip
    pipeline = _build(
        variant=v["variant"], device=v["device"], dtype=v["dtype"], weights_dir=v["weights_dir"],
        offline=v["offline"], judge=v["judge"], planner=v["plan"], silence=v["silence"],
        mllm_model=v["mllm_model"], separate_only_speech=v["only_speech"],
        extra={"mllm_adapter": str(v["mllm_adapter"])} if v.get("mllm_adapter") else {},
    )  # fmt: skip
    return options, pipeline


@app.command()
@user_errors
def generate(
    video: Annotated[Path, typer.Argument(help="Input video.")],
    output_dir: OutDir = Path("outputs"),
    variant: Variant = "large_44k_v2",
    mode: Mode = "s4",
    postprocess: PostProcess = "neg",
    judge: JudgeOpt = "cascade",
    plan: PlanOpt = "canonical",
    silence: SilenceOpt = "rms",
    prompt: Prompt = "",
    negative_prompt: NegPrompt = "",
    duration: Duration = 8.0,
    whole: Whole = False,
    window: Window = None,
    seed: Seed = 42,
    num_steps: Steps = 25,
    cfg_strength: Cfg = 4.5,
    device: Device = "auto",
    dtype: Dtype = "auto",
    weights_dir: WeightsDir = None,
    offline: Offline = False,
    mllm_model: MllmModel = "Qwen/Qwen2.5-Omni-7B",
    mllm_adapter: MllmAdapter = None,
    only_speech: OnlySpeech = False,
    no_video: NoVideo = False,
    no_intermediates: NoInter = False,
    quiet: Quiet = False,
) -> None:
    """Generate a soundtrack for VIDEO, judge and remove voice-over, check silence."""
    setup_logging(quiet)
    from deepsound.errors import MediaError

    if not video.exists():
        raise MediaError(f"{video}: no such file")
    options, pipeline = _setup(locals())
    result = pipeline.run(video, output_dir, options)
    out = Console()
    for kind, path in result.outputs.items():
        out.print(f"{kind}: {path}", highlight=False)
    if result.audio is None:
        out.print("final audio: removed (rm fallback: what was left was silent)")


@app.command()
@user_errors
def batch(
    inputs: Annotated[
        Path, typer.Argument(help="Folder of videos, text file of paths, or CSV path[,prompt].")
    ],
    output_dir: OutDir = Path("outputs"),
    variant: Variant = "large_44k_v2",
    mode: Mode = "s4",
    postprocess: PostProcess = "neg",
    judge: JudgeOpt = "cascade",
    plan: PlanOpt = "canonical",
    silence: SilenceOpt = "rms",
    prompt: Prompt = "",
    negative_prompt: NegPrompt = "",
    duration: Duration = 8.0,
    whole: Whole = False,
    window: Window = None,
    seed: Seed = 42,
    num_steps: Steps = 25,
    cfg_strength: Cfg = 4.5,
    device: Device = "auto",
    dtype: Dtype = "auto",
    weights_dir: WeightsDir = None,
    offline: Offline = False,
    mllm_model: MllmModel = "Qwen/Qwen2.5-Omni-7B",
    mllm_adapter: MllmAdapter = None,
    only_speech: OnlySpeech = False,
    no_video: NoVideo = False,
    no_intermediates: NoInter = False,
    shard: Annotated[
        str | None, typer.Option(help="K/N: this worker's share of the list (every N-th from K).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Redo clips whose outputs exist.")] = False,
    quiet: Quiet = False,
) -> None:
    """Run many clips with models loaded once; skip finished clips, go on past bad ones."""
    setup_logging(quiet)
    from deepsound.batch import parse_shard, read_inputs, run_batch

    items = read_inputs(inputs)
    shard_spec = parse_shard(shard)
    options, pipeline = _setup(locals())
    total = len(items[shard_spec[0] :: shard_spec[1]])
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=quiet) as progress:
        task = progress.add_task("clips", total=total)
        summary = run_batch(
            pipeline, items, output_dir, options, shard=shard_spec, overwrite=overwrite,
            on_item=lambda outcome: progress.advance(task),
        )  # fmt: skip
    table = Table(title=f"batch: {summary.count('done')} done, {summary.count('skipped')} skipped, "
                  f"{summary.count('failed')} failed")  # fmt: skip
    for column in ("video", "status", "voice-over", "fallback", "MLLM calls", "seconds / reason"):
        table.add_column(column)
    for item in summary.items:
        vo = "" if item.has_voice_over is None else ("yes" if item.has_voice_over else "no")
        detail = item.reason if item.status != "done" else f"{item.seconds:.1f}"
        table.add_row(
            Path(item.video).name, item.status, vo, item.fallback or "", str(item.mllm_calls), detail
        )
    Console().print(table)
    if summary.count("failed"):
        raise typer.Exit(1)


def _register_subcommands() -> None:
    """Commands that live with their component (separation, reasoning, weights)."""
    from deepsound.cli.ask import ask_command
    from deepsound.cli.dataset import build_command, dataset_app
    from deepsound.cli.finetune import finetune_command
    from deepsound.cli.judge import judge_command
    from deepsound.cli.separate import separate_command
    from deepsound.cli.vo_rate import vo_rate_command
    from deepsound.cli.weights import weights_app

    app.command("separate")(user_errors(separate_command))
    app.command("judge")(user_errors(judge_command))
    app.command("ask")(user_errors(ask_command))
    app.command("vo-rate")(user_errors(vo_rate_command))
    app.add_typer(weights_app, name="weights", help="List, download and verify published weights.")
    dataset_app.command("build")(user_errors(build_command))
    app.add_typer(
        dataset_app, name="dataset", help="Build the CoT-V2A fine-tuning data from your own videos."
    )
    app.command("finetune")(user_errors(finetune_command))


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
