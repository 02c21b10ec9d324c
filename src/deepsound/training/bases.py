"""The models a fine-tuning can start from, behind one small interface.

A base knows four things the trainer needs and nothing else: the module LoRA
goes into, which of its linear layers are the language model's (and which are
the projectors and the towers), how one :class:`~deepsound.dataset.manifest.Sample`
becomes the tensors of a teacher-forced forward pass, and how the model answers
a sample's question (greedy, as the pipeline asks it). Qwen-Omni's thinker is
one; VideoLLaMA2 (the paper's model) plugs in the same way once its family is
in :mod:`deepsound.models`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from deepsound.dataset.manifest import Sample
from deepsound.errors import ConfigError
from deepsound.training.layers import IGNORE_INDEX, linear_layers

BASE_NAMES = ("qwen-omni", "videollama2", "videollama2-cot")
INPUT_SETTINGS = ("fps", "max_frames", "min_pixels", "max_pixels")  # OmniReasoner's frame sampling


class TrainableBase(Protocol):
    """What :class:`~deepsound.training.trainer.Trainer` needs of a model family."""

    model_id: str
    model: Any  # the torch module LoRA is injected into

    def lora_targets(self, *, projectors: bool, towers: bool) -> list[str]: ...

    def encode(self, sample: Sample) -> dict[str, Any]: ...

    def loss(self, inputs: dict[str, Any]) -> Any: ...

    def answer(self, sample: Sample, max_new_tokens: int) -> str: ...

    def answer_tokens(self, text: str) -> int: ...


# Qwen2.5-Omni / Qwen3-Omni thinkers: transformers' module names
_OMNI_LLM = r"model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
_OMNI_PROJECTORS = r"model\.audio_tower\.proj|model\.visual\.merger\.mlp\.\d+"
_OMNI_TOWERS = (
    r"model\.audio_tower\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|fc1|fc2)"
    r"|model\.visual\.blocks\.\d+\.(attn\.(q|k|v|qkv|proj)|mlp\.(gate|up|down)_proj)"
)


class OmniBase:
    """A Qwen-Omni thinker (:class:`~deepsound.models.qwen_omni.reasoner.OmniReasoner`) as a trainable base.

    A sample is encoded exactly as the pipeline asks it (:meth:`OmniReasoner.prepare`:
    same frames, same audio-as-soundtrack interleaving, same chat template and
    system prompt), then the target answer and the end-of-turn token are
    appended; only those positions carry labels.
    """

    def __init__(self, reasoner: Any) -> None:
        self.reasoner = reasoner
        self.model_id = reasoner.model_id

    @property
    def model(self) -> Any:
        return self.reasoner.model

    def input_settings(self) -> dict[str, Any]:
        """How frames are sampled; kept with the adapter so that inference sees what training saw."""
        return {key: getattr(self.reasoner, key) for key in INPUT_SETTINGS}

    def lora_targets(self, *, projectors: bool, towers: bool) -> list[str]:
        parts = [_OMNI_LLM] + ([_OMNI_PROJECTORS] if projectors else []) + ([_OMNI_TOWERS] if towers else [])
        return linear_layers(self.model, parts)

    def loss(self, inputs: dict[str, Any]) -> Any:
        """Teacher-forced loss over the answer (LoRA layers sit inside the model, so it is called directly)."""
        return self.model(**inputs).loss

    def _audio(self, sample: Sample) -> Any:
        if sample.audio is None:
            return None
        from deepsound.media import read_audio

        return read_audio(sample.audio)

    def _answer_ids(self, text: str) -> list[int]:
        tok = self.reasoner.processor.tokenizer
        return tok(text + "<|im_end|>", add_special_tokens=False)["input_ids"]

    def answer_tokens(self, text: str) -> int:
        return len(self._answer_ids(text))

    def encode(self, sample: Sample) -> dict[str, Any]:
        import torch

        batch, _, _ = self.reasoner.prepare(
            sample.question, video=sample.video, audio=self._audio(sample), system=sample.system
        )
        inputs = dict(batch)
        target = torch.tensor([self._answer_ids(sample.answer)], device=inputs["input_ids"].device)
        prompt = inputs["input_ids"]
        inputs["input_ids"] = torch.cat([prompt, target], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        labels = torch.full_like(inputs["input_ids"], IGNORE_INDEX)
        labels[:, prompt.shape[1] :] = target
        inputs["labels"] = labels
        inputs["use_audio_in_video"] = sample.audio is not None
        return inputs

    def answer(self, sample: Sample, max_new_tokens: int) -> str:
        budget = self.reasoner.max_new_tokens
        self.reasoner.max_new_tokens = max_new_tokens
        try:
            return self.reasoner.ask(
                sample.question,
                video=sample.video,
                audio=self._audio(sample),
                system=sample.system,
                step="eval",
            ).text
        finally:
            self.reasoner.max_new_tokens = budget


def load_base(
    name: str,
    model: str | Path | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    offline: bool = False,
    **inputs: Any,
) -> TrainableBase:
    """The base called ``name``, loaded from ``model`` (a hub id or local folder; default: the family's).

    ``inputs`` overrides how frames are sampled (``fps``, ``max_frames``, ``min_pixels``, ``max_pixels``).
    """
    if name not in BASE_NAMES:
        raise ConfigError(f"unknown fine-tuning base {name!r}; choose one of: {', '.join(BASE_NAMES)}")
    if name == "qwen-omni":
        from deepsound.models.qwen_omni.reasoner import DEFAULT_MODEL, OmniReasoner

        chosen = {k: v for k, v in inputs.items() if v is not None}
        reasoner = OmniReasoner.load(
            model or DEFAULT_MODEL, device=device, dtype=dtype, offline=offline, **chosen
        )
        return OmniBase(reasoner)
    return _videollama2_base(name, model, device=device, dtype=dtype, offline=offline, **inputs)


def _videollama2_base(name: str, model: str | Path | None, **options: Any) -> TrainableBase:
    import importlib.util

    if importlib.util.find_spec("deepsound.models.videollama2") is None:
        raise ConfigError(
            f"the {name} base needs the VideoLLaMA2 model family (deepsound.models.videollama2), "
            "which this installation does not hold; use --base qwen-omni"
        )
    from deepsound.training.videollama2_base import load_videollama2

    return load_videollama2(name, model, **options)
