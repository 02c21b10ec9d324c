"""``deepsound ask VIDEO --question TEXT``: one question to the audio-visual LLM, one JSON object out.

``--with-audio`` alone lets it hear the video's own soundtrack; ``--with-audio FILE``
(FILE is the optional second argument) plays FILE as the soundtrack. The work is
:func:`deepsound.usecases.ask.ask`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def ask_command(
    video: Annotated[Path, typer.Argument(help="The video the question is about.")],
    audio: Annotated[
        Path | None,
        typer.Argument(help="With --with-audio: a file to play as the soundtrack.", show_default=False),
    ] = None,
    *,
    question: Annotated[str, typer.Option(help="The question, verbatim.")],
    with_audio: Annotated[
        bool,
        typer.Option(
            "--with-audio",
            help="Let the model hear audio: the video's own track, or the AUDIO file that follows.",
        ),
    ] = False,
    mllm: Annotated[str, typer.Option(help="auto, omni, videollama2-cot or videollama2-qa.")] = "auto",
    mllm_model: Annotated[
        str | None, typer.Option(help="Checkpoint folder or hub id (default: the family's published model).")
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Token budget (default: 2048 for VideoLLaMA2, 512 for Qwen-Omni).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 …")] = "auto",
    dtype: Annotated[
        str,
        typer.Option(
            help="auto (VideoLLaMA2: fp16 on CUDA; Omni: bf16; fp32 on CPU), float32, float16, bfloat16."
        ),
    ] = "auto",
    weights_dir: Annotated[Path | None, typer.Option(help="Folder holding downloaded checkpoints.")] = None,
    offline: Annotated[bool, typer.Option(help="Never download; fail with a clear message instead.")] = False,
) -> None:
    """Ask one question about VIDEO and print the answer as one JSON object."""
    from deepsound.media._open import check_input_path
    from deepsound.usecases.ask import ask

    video = check_input_path(video)
    audio_file = check_input_path(audio) if audio is not None else None
    row = ask(
        video, question, hear=with_audio, audio_file=audio_file, mllm=mllm, model=mllm_model,
        max_new_tokens=max_new_tokens, device=device, dtype=dtype, weights_dir=weights_dir, offline=offline,
    )  # fmt: skip
    typer.echo(json.dumps(row, ensure_ascii=False, default=str))
