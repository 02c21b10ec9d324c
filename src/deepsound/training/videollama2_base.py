"""VideoLLaMA2 (the paper's MLLM) as a fine-tuning base: ``--base videollama2-cot`` / ``videollama2``.

The model is :class:`deepsound.models.videollama2.model.VideoLlama2` (a Qwen2
LLM with the STC video connector, the BEATs audio tower and its projector, and
the SigLIP tower). A sample is prompted exactly as
:class:`~deepsound.models.videollama2.chat.VideoLlamaChat` asks it (the
checkpoint's chat template, ``<video>`` replaced by the video tokens followed by
the audio tokens, no system message: the released model was trained without
one), the answer and the end token appended; the loss is the LLM's over the
answer only. The media tokens are computed inside the loss, so LoRA on the
connector and the audio projector (``--projectors``) is trained too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepsound.dataset.manifest import Sample
from deepsound.training.layers import IGNORE_INDEX, linear_layers

_LLM = r"llm\.model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
_PROJECTORS = r"llm\.model\.mm_projector(_a)?\..*"
_TOWERS = r"vision\..*|llm\.model\.audio_tower\..*"


class VideoLlamaBase:
    """One VideoLLaMA2 checkpoint (a :class:`VideoLlamaChat`) as a :class:`~deepsound.training.bases.TrainableBase`."""

    def __init__(self, chat: Any) -> None:
        self.chat = chat
        self.model_id = chat.name

    @property
    def model(self) -> Any:
        return self.chat.model

    def input_settings(self) -> dict[str, Any]:
        return {"num_frames": self.chat.num_frames}

    def lora_targets(self, *, projectors: bool, towers: bool) -> list[str]:
        parts = [_LLM] + ([_PROJECTORS] if projectors else []) + ([_TOWERS] if towers else [])
        return linear_layers(self.model, parts)

    def _media(self, sample: Sample) -> tuple[Any, Any]:
        from deepsound.media import read_audio
        from deepsound.models.videollama2 import inputs

        samples = seconds = None
        if sample.audio is not None:
            audio = read_audio(sample.audio)
            samples, seconds = inputs.resample_waveform(audio.waveform, audio.sample_rate), audio.duration
        pixels, fbank, _ = self.chat.media(
            sample.video, samples, with_audio=samples is not None, seconds=seconds
        )
        return pixels, fbank

    def _answer_ids(self, text: str) -> list[int]:
        tok = self.chat.tokenizer
        return tok(text, add_special_tokens=False).input_ids + [tok.eos_token_id]

    def answer_tokens(self, text: str) -> int:
        return len(self._answer_ids(text))

    def encode(self, sample: Sample) -> dict[str, Any]:
        pixels, fbank = self._media(sample)
        _, prompt = self.chat.prompt(sample.question)
        return {"prompt": prompt, "answer": self._answer_ids(sample.answer), "pixels": pixels, "fbank": fbank}

    def loss(self, inputs: dict[str, Any]) -> Any:
        import torch

        model = self.model
        fbank = inputs["fbank"]
        media = model.media_tokens(
            inputs["pixels"].to(model.dtype), None if fbank is None else fbank.to(model.dtype)
        )
        embeds = model.embed(inputs["prompt"] + inputs["answer"], [media])
        answer = torch.tensor(inputs["answer"], device=embeds.device)
        labels = torch.full(embeds.shape[:2], IGNORE_INDEX, dtype=torch.long, device=embeds.device)
        labels[0, -answer.numel() :] = answer
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        return model.llm(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss

    def answer(self, sample: Sample, max_new_tokens: int) -> str:
        pixels, fbank = self._media(sample)
        return self.chat.answer(sample.question, pixels, fbank, max_new_tokens=max_new_tokens).text


def load_videollama2(
    name: str, model: str | Path | None, *, device: str, dtype: str, offline: bool, **_: Any
) -> VideoLlamaBase:
    """The CoT checkpoint (``videollama2-cot``, the paper's) or the QA one (``videollama2``), or ``model``."""
    from deepsound.models.videollama2.reasoner import COT_MODEL, QA_MODEL, VideoLlamaSettings, load_chat

    default = COT_MODEL if name == "videollama2-cot" else QA_MODEL
    settings = VideoLlamaSettings(device=device, dtype=dtype, offline=offline)
    return VideoLlamaBase(load_chat(str(model or default), settings))
