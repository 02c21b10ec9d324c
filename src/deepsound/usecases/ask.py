"""One question to an audio-visual LLM, answered with the generated ids: the low-level check of a reasoner.

What the model answers (``text``) and the ids it generated (``token_ids``, prompt
excluded), with the prompt it was given and what it saw. The audio is the video's own
track or another file played as its soundtrack (frames then end where that file ends,
as in a muxed file). ``mllm`` picks the model family; "auto" lets a folder's
``config.json`` decide (``videollama2_qwen2`` → ``videollama2-cot``, anything else →
``omni``). The inputs are decoded as each family's reference decodes a file, so the ids
are the ones the reference would generate. Qwen-Omni is asked through the MLLM contract
(its call record carries the ids); VideoLLaMA2 through its one-checkpoint chat, since the
question may go to either of its two checkpoints and its audio is decoded from the file as
the reference decodes it. ``deepsound ask`` calls :func:`ask`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepsound.devices import resolve_dtype_name
from deepsound.errors import ConfigError

MLLMS = ("auto", "omni", "videollama2-cot", "videollama2-qa")


def ask(
    video: Path,
    question: str,
    *,
    hear: bool = False,
    audio_file: Path | None = None,
    mllm: str = "auto",
    model: str | None = None,
    max_new_tokens: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    weights_dir: Path | None = None,
    offline: bool = False,
) -> dict[str, Any]:
    """The answer to ``question`` about ``video`` (heard with its own track or ``audio_file``) as one dict."""
    hear = hear or audio_file is not None
    family = _family(mllm, model)
    if family == "omni":
        return _ask_omni(video, question, hear, audio_file, model, max_new_tokens, device, dtype, offline)
    return _ask_videollama2(
        video, question, hear, audio_file, family, model, max_new_tokens, device, dtype, weights_dir, offline
    )


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
    from deepsound.models.videollama2.reasoner import VideoLlamaSettings, load_chat
    from deepsound.steps.voice_over import reference_voice_over

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
    from deepsound.media.audio_io import read_audio
    from deepsound.models.qwen_omni.reasoner import DEFAULT_MODEL, OmniReasoner
    from deepsound.weights.loading import resolve_device

    where = resolve_device(device)
    reasoner = OmniReasoner.load(
        model or DEFAULT_MODEL,
        device=where,
        dtype=resolve_dtype_name(dtype, where),
        offline=offline,
        max_new_tokens=max_new_tokens or 512,
    )
    audio = read_audio(audio_file or video) if hear else None
    record = reasoner.ask(question, video=video, audio=audio).record  # through the MLLM contract
    return {
        "text": record["answer"],
        "token_ids": record["token_ids"],
        "mllm": "omni",
        "model": record["model"],
        "prompt": record["chat_prompt"],
        "tokens_in": record["tokens_in"],
        "inputs": record["inputs"],
        "seconds": record["seconds"],
    }
