"""``deepsound judge VIDEO…``: step 2 alone, on videos as they are (their own audio track).

Useful to sort a collection before generating for it, or to check a judge
against clips whose answer is known. One JSON line per file goes to stdout (and
to ``--output`` when given): the verdict, the judge that gave it and its
evidence (speech segments and ratio; the chain of thought when the MLLM was
asked). A file that cannot be read gets a line with its error and the others go
on; the exit code is then 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from deepsound.errors import DeepSoundError
from deepsound.usecases.judge import judge_file

__all__ = ["judge_command", "judge_file"]


def judge_command(
    videos: Annotated[list[Path], typer.Argument(help="Videos whose own audio track is judged.")],
    judge: Annotated[
        str | None,
        typer.Option(
            help="cascade (speech detector, then MLLM where speech is heard), mllm, speech. (default: cascade)"
        ),
    ] = None,
    speech: Annotated[
        str | None,
        typer.Option(
            help="Speech detector: staged, silero, ten, fused, vocal-stem. (default: the configured one)"
        ),
    ] = None,
    mllm: Annotated[
        str | None, typer.Option(help="Audio-visual LLM family: omni, videollama2-cot, videollama2-qa.")
    ] = None,
    mllm_model: Annotated[
        str | None, typer.Option(help="Hub id or local folder of the audio-visual LLM.")
    ] = None,
    mllm_adapter: Annotated[
        Path | None, typer.Option(help="LoRA adapter folder to load onto the MLLM.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:1 …")] = None,
    offline: Annotated[bool, typer.Option(help="Never download; fail with a clear message instead.")] = False,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Token budget of each MLLM answer. (default: 2048)")
    ] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="TOML file of settings.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the JSON lines to this file.")
    ] = None,
) -> None:
    """Tell whether each VIDEO's audio holds a voice-over; one JSON line per file."""
    from deepsound.cli.options import settings_from_values
    from deepsound.files import atomic_output
    from deepsound.registry import Components

    settings = settings_from_values(
        {"judge": judge, "speech": speech, "mllm": mllm, "mllm_model": mllm_model, "mllm_adapter": mllm_adapter, "device": device,
         "offline": offline, "max_new_tokens": max_new_tokens, "config_file": config_file}
    )  # fmt: skip
    judge_obj = Components(settings.pipeline).judge
    lines: list[str] = []
    failed = 0
    for video in videos:
        try:
            row = judge_file(judge_obj, video)
        except DeepSoundError as exc:
            if not _is_per_file(exc):
                raise
            row = {"video": str(video), "error": str(exc)}
            failed += 1
        line = json.dumps(row, ensure_ascii=False, default=str)
        typer.echo(line)
        lines.append(line)
    if output is not None:
        with atomic_output(output) as tmp:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if failed:
        raise typer.Exit(1)


def _is_per_file(exc: DeepSoundError) -> bool:
    """Bad media fails one line; missing weights or a bad option would fail every file, so they stop the run."""
    from deepsound.errors import MediaError

    return isinstance(exc, MediaError)
