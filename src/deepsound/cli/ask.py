"""``deepsound ask VIDEO --question TEXT``: one question to the audio-visual LLM, one JSON object out.

The low-level check of the reasoner: what the model answers (``text``) and
the ids it generated (``token_ids``, prompt excluded), with the prompt it was
given and what it saw. ``--with-audio`` alone lets it hear the video's own
soundtrack; ``--with-audio FILE`` (FILE is the optional second argument)
plays FILE as the soundtrack (frames then
end where FILE ends, as in a muxed file). ``--mllm`` picks the model family;
by default a folder's ``config.json`` decides (``videollama2_qwen2`` →
``videollama2-cot``, anything else → ``omni``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from deepsound.errors import ConfigError

MLLMS = ("auto", "omni", "videollama2-cot", "videollama2-qa")


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

    video = check_input_path(video)
    audio_file = check_input_path(audio) if audio is not None else None
    hear = with_audio or audio_file is not None
    family = _family(mllm, mllm_model)
    if family == "omni":
        row = _ask_omni(video, question, hear, audio_file, mllm_model, max_new_tokens, device, dtype, offline)
    else:
        row = _ask_videollama2(
            video,
            question,
            hear,
            audio_file,
            family,
            mllm_model,
            max_new_tokens,
            device,
            dtype,
            weights_dir,
            offline,
        )
    typer.echo(json.dumps(row, ensure_ascii=False, default=str))


def _family(mllm: str, model: str | None) -> str:
    if mllm not in MLLMS:
        raise ConfigError(f"unknown --mllm {mllm!r}; choose one of: {', '.join(MLLMS)}")
    if mllm != "auto":
        return mllm
    config = Path(model).expanduser() / "config.json" if model else None
    if config is not None and config.is_file():
        kind = json.loads(config.read_text(encoding="utf-8")).get("model_type", "")
        return "videollama2-cot" if str(kind).startswith("videollama2") else "omni"
    return "videollama2-cot" if model is None or "videollama" in model.lower() else "omni"


def _ask_videollama2(
    video: Path,
    question: str,
    hear: bool,
    audio_file: Path | None,
    family: str,
    model: str | None,
    max_new_tokens: int | None,
    device: str,
    dtype: str,
    weights_dir: Path | None,
    offline: bool,
) -> dict[str, Any]:
    from deepsound.models.videollama2 import inputs
    from deepsound.models.videollama2.chat import DEFAULT_MAX_NEW_TOKENS
    from deepsound.models.videollama2.reasoner import VideoLlamaSettings, load_chat, reference_voice_over

    qa = family == "videollama2-qa" and hear  # the QA model answers the step with audio
    settings = VideoLlamaSettings(
        mode="qa" if family == "videollama2-qa" else "cot",
        device=device,
        dtype=dtype,
        max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
        weights_dir=weights_dir,
        offline=offline,
    )
    name = model or (settings.qa_model if qa else settings.cot_model)
    chat = load_chat(name, settings)
    samples = seconds = None
    if hear:
        samples = inputs.decode_audio(audio_file or video)  # None: no track, the reference's silence
        if audio_file is not None and samples is not None:
            seconds = len(samples) / inputs.SAMPLE_RATE
    pixels, fbank, given = chat.media(video, samples, with_audio=hear, seconds=seconds)
    reply = chat.answer(question, pixels, fbank, max_new_tokens=settings.max_new_tokens, given=given)
    row = {
        "text": reply.text,
        "token_ids": reply.token_ids,
        "mllm": family,
        "model": name,
        "prompt": reply.prompt,
        "tokens_in": reply.prompt_tokens,
        "inputs": reply.inputs,
        "seconds": reply.seconds,
    }
    if hear:
        row.update(reference_voice_over(reply.text, "qa" if qa else "cot"))
    return row


def _ask_omni(
    video: Path,
    question: str,
    hear: bool,
    audio_file: Path | None,
    model: str | None,
    max_new_tokens: int | None,
    device: str,
    dtype: str,
    offline: bool,
) -> dict[str, Any]:
    import time

    import torch

    from deepsound.media.audio_io import read_audio
    from deepsound.models.qwen_omni.reasoner import DEFAULT_MODEL, OmniReasoner
    from deepsound.weights.loading import resolve_device

    where = resolve_device(device)
    precision = dtype if dtype != "auto" else ("bfloat16" if where.startswith("cuda") else "float32")
    reasoner = OmniReasoner.load(
        model or DEFAULT_MODEL,
        device=where,
        dtype=precision,
        offline=offline,
        max_new_tokens=max_new_tokens or 512,
    )
    audio = read_audio(audio_file or video) if hear else None
    started = time.perf_counter()
    batch, text, given = reasoner.prepare(question, video=video, audio=audio)
    prompt_length = int(batch["input_ids"].shape[1])
    with torch.inference_mode():
        output = reasoner.model.generate(
            **batch,
            use_audio_in_video=audio is not None,
            max_new_tokens=reasoner.max_new_tokens,
            do_sample=False,
        )
    new = output[0, prompt_length:]
    return {
        "text": reasoner.processor.tokenizer.decode(new, skip_special_tokens=True).strip(),
        "token_ids": new.tolist(),
        "mllm": "omni",
        "model": reasoner.model_id,
        "prompt": text,
        "tokens_in": prompt_length,
        "inputs": given,
        "seconds": round(time.perf_counter() - started, 3),
    }
