"""``deepsound dataset build VIDEOS -o DIR``: the CoT-V2A training data, built without annotation.

VIDEOS is a folder of videos, a text file of paths or a CSV (as for ``batch``).
Step 1 runs with the configured generator; speech in the generated audio and in
each clip's own soundtrack (and the separator's vocal share) decide the label.
Resumable: clips already in DIR are not generated again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

dataset_app = typer.Typer(
    no_args_is_help=True, help="Build the CoT-V2A fine-tuning data from your own videos."
)


def build_command(
    videos: Annotated[
        Path, typer.Argument(help="Folder of videos, text file of paths, or CSV path[,prompt].")
    ],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Dataset folder.")],
    variant: Annotated[
        str | None, typer.Option(help="MMAudio variant for step 1 (default: the generator's own).")
    ] = None,
    generator: Annotated[str, typer.Option(help="Step-1 generator (a registered name).")] = "mmaudio",
    kinds: Annotated[
        str, typer.Option("--kinds", help="Samples to write: plan, cot, qa (comma-separated).")
    ] = "plan,cot,qa",
    limit: Annotated[int | None, typer.Option(help="Stop once this many clips are in the dataset.")] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            help="Seconds of audio per clip (shortened to the video; default: the pipeline's 10 s)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Generation seed.")] = 42,
    num_steps: Annotated[int, typer.Option("--steps", help="Flow-matching Euler steps.")] = 25,
    separator: Annotated[
        bool, typer.Option(help="Measure the separator's vocal share (loads BS-RoFormer).")
    ] = True,
    caption: Annotated[
        bool, typer.Option(help="Ask the MLLM to describe the pictures for the caption.")
    ] = False,
    drop_inconsistent: Annotated[
        bool, typer.Option(help="Leave out clips where the separator disagrees with the speech detector.")
    ] = False,
    min_speech: Annotated[
        float, typer.Option(help="Seconds of speech below which none counts as heard.")
    ] = 0.0,
    mllm_model: Annotated[
        str | None,
        typer.Option(help="Hub id or local folder of the MLLM (for --caption; default: Qwen2.5-Omni-7B)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 …")] = "auto",
    weights_dir: Annotated[
        Path | None, typer.Option(help="Folder with the weights (MMAudio layout).")
    ] = None,
    offline: Annotated[bool, typer.Option(help="Never download; fail with a clear message instead.")] = False,
    speech: Annotated[
        str | None,
        typer.Option(
            help="Speech detector that labels the clips: staged, silero, ten, fused, vocal-stem. (default: the configured one)"
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
) -> None:
    """Generate audio for each VIDEO, label it from measured speech, write the JSONL manifest and summary."""
    import json

    from rich.console import Console

    from deepsound.batch import read_inputs
    from deepsound.cli.app import err_console, setup_logging
    from deepsound.config import GeneratorConfig, MllmConfig, PipelineConfig, SpeechConfig
    from deepsound.dataset.builder import BuildSettings, DatasetBuilder
    from deepsound.dataset.evidence import LabelRules
    from deepsound.interfaces import DEFAULT_DURATION
    from deepsound.registry import Components

    setup_logging(quiet)
    items = read_inputs(videos)
    settings = BuildSettings(
        kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()), duration=duration or DEFAULT_DURATION, seed=seed,
        num_steps=num_steps, separator=separator, caption=caption, limit=limit,
        rules=LabelRules(min_speech_seconds=min_speech, drop_inconsistent=drop_inconsistent),
    )  # fmt: skip
    config = PipelineConfig(
        generator=GeneratorConfig(generator, **({"variant": variant} if variant else {})),
        device=device,
        weights_dir=weights_dir,
        offline=offline,
        mllm=MllmConfig(model=mllm_model),
        speech=SpeechConfig(name=speech) if speech else SpeechConfig(),
    )
    builder = DatasetBuilder(Components(config), settings)
    with err_console.status("building", spinner="dots") if not quiet else _nothing():
        summary = builder.build(
            [item.video for item in items], output_dir, on_clip=_report(err_console, quiet)
        )
    brief = {
        k: summary[k] for k in ("clips", "samples", "labels", "voice_over_share", "label_reasons", "this_run")
    }
    Console().print(json.dumps(brief), highlight=False, markup=False, soft_wrap=True)
    if not summary["clips"]:
        from deepsound.errors import DeepSoundError

        skipped = len(summary["skipped"])
        raise DeepSoundError(
            f"{output_dir}: nothing was built ({skipped} clip{'s' if skipped != 1 else ''} skipped"
            f"{', reasons above' if skipped and not quiet else ''})"
        )


def _report(console, quiet: bool):  # noqa: ANN001, ANN202
    def on_clip(outcome) -> None:  # noqa: ANN001
        if not quiet:
            detail = outcome.reason if outcome.status == "skipped" else (outcome.label or "")
            console.print(
                f"{outcome.status}: {Path(outcome.video).name} {detail}", highlight=False, markup=False
            )

    return on_clip


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
