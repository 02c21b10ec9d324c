"""One loaded VideoLLaMA2 checkpoint answering one question, as the reference's ``mm_infer`` does.

The prompt is the checkpoint's own chat template applied to a single user
message ``"<video>\\n" + question`` (no system message is added; a default one
the template inserts stays), the ``<video>`` tag becomes the placeholder id
and each text piece is tokenised without special tokens, as
``tokenizer_multimodal_token`` does. Decoding is greedy through transformers'
``generate`` on the spliced embeddings, with the checkpoint's
``generation_config.json`` as the base (its end tokens and repetition penalty
act as they do under the reference; its sampling settings do not, sampling is
off), a stop on the tokenizer's end token (the reference's keyword criterion)
and a 2048-token budget.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepsound.models.videollama2 import inputs
from deepsound.models.videollama2.model import PLACEHOLDER_ID, VIDEO_TOKEN, VideoLlama2

DEFAULT_MAX_NEW_TOKENS = 2048


@dataclass
class Reply:
    text: str
    token_ids: list[int]
    prompt: str
    prompt_tokens: int
    inputs: dict[str, Any]
    seconds: float


class _StopOnToken:
    """True once the last generated id is the end token (what the reference's keyword criterion amounts to)."""

    def __init__(self, token_id: int | None) -> None:
        self.token_id = token_id

    def __call__(self, input_ids: torch.Tensor, scores: Any, **_: Any) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if self.token_id is not None and input_ids.shape[1] > 0:
            done = input_ids[:, -1] == self.token_id
        return done


class VideoLlamaChat:
    """Model, tokenizer, image processor and generation settings of one checkpoint folder."""

    def __init__(
        self, model: VideoLlama2, tokenizer: Any, processor: Any, generation: Any, *, name: str
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.processor = processor
        self.generation = generation
        self.name = name

    @classmethod
    def from_folder(
        cls, folder: Path, tower: Path, *, dtype: torch.dtype, device: str, name: str | None = None
    ) -> VideoLlamaChat:
        import transformers

        from deepsound.models.videollama2.model import load_model, qwen2_config, read_config

        folder = Path(folder)
        model = load_model(folder, tower, dtype=dtype).to(device)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        if tokenizer.pad_token is None and tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        return cls(
            model,
            tokenizer,
            load_processor(tower, model),
            load_generation(folder, qwen2_config(read_config(folder))),
            name=name or str(folder),
        )

    @property
    def num_frames(self) -> int:
        return self.model.layout.num_frames

    def prompt(self, question: str) -> tuple[str, list[int]]:
        message = [{"role": "user", "content": VIDEO_TOKEN + "\n" + question}]
        text = self.tokenizer.apply_chat_template(message, tokenize=False, add_generation_prompt=True)
        ids: list[int] = []
        for i, chunk in enumerate(text.split(VIDEO_TOKEN)):
            if i:
                ids.append(PLACEHOLDER_ID)
            ids.extend(self.tokenizer(chunk, add_special_tokens=False).input_ids)
        return text, ids

    def media(
        self, video: Path, samples: np.ndarray | None, *, with_audio: bool, seconds: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
        frames = inputs.read_frames(video, self.num_frames, max_seconds=seconds)
        pixels = inputs.pixel_values(frames.frames, self.processor)
        given: dict[str, Any] = {
            "video": str(video),
            "frames": len(frames.indices),
            "frame_indices": frames.indices,
            "video_frames": frames.total,
        }
        fbank = None
        if with_audio:
            fbank = inputs.audio_fbank(samples)
            given["audio_seconds"] = None if samples is None else round(len(samples) / inputs.SAMPLE_RATE, 3)
        return pixels, fbank, given

    @torch.inference_mode()
    def answer(
        self,
        question: str,
        pixels: torch.Tensor,
        fbank: torch.Tensor | None,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        given: dict[str, Any] | None = None,
    ) -> Reply:
        started = time.perf_counter()
        text, ids = self.prompt(question)
        media = self.model.media_tokens(
            pixels.to(self.model.dtype), None if fbank is None else fbank.to(self.model.dtype)
        )
        embeds = self.model.embed(ids, [media])
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        eos = self.tokenizer.eos_token_id
        settings = copy.deepcopy(self.generation)  # the checkpoint's (end tokens, repetition penalty) ...
        settings.do_sample = False  # ... made greedy with the reference's budget and padding
        settings.max_new_tokens = max_new_tokens
        settings.pad_token_id = eos
        settings.use_cache = True
        output = self.model.llm.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            generation_config=settings,
            stopping_criteria=[_StopOnToken(eos)],
        )
        new = output[0].tolist()
        reply = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        return Reply(
            reply, new, text, int(embeds.shape[1]), dict(given or {}), round(time.perf_counter() - started, 3)
        )


def load_processor(tower: Path, model: VideoLlama2) -> Any:
    """The tower folder's SigLIP image processor; without one, SigLIP's defaults at the tower's image size."""
    import transformers

    if (Path(tower) / "preprocessor_config.json").is_file():
        return transformers.SiglipImageProcessor.from_pretrained(str(tower))
    size = int(model.vision.config.image_size)
    return transformers.SiglipImageProcessor(size={"height": size, "width": size})


def load_generation(folder: Path, llm_config: Any) -> Any:
    """``generation_config.json`` when the checkpoint has one (as ``from_pretrained`` reads it), else the model config's."""
    import transformers

    if (Path(folder) / "generation_config.json").is_file():
        return transformers.GenerationConfig.from_pretrained(str(folder))
    return transformers.GenerationConfig.from_model_config(llm_config)
