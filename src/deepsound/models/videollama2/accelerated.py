"""Loading for small GPUs: 8-/4-bit language-model weights (bitsandbytes) or CPU offload (accelerate).

Quantised layers and offload hooks are transformers' and accelerate's own
machinery, reached through ``Qwen2ForCausalLM.from_pretrained`` on the
checkpoint folder (its ``model.mm_projector``/``audio_tower``/``mm_projector_a``
tensors are not the LLM's and are left to the strict loader, which loads
them, in full precision of ``dtype``, onto the first device). The reference's
own 8-bit switch passes a misspelt option (``load_in84bit``) and so loads
float16; here 8-bit means 8-bit. The 4-bit settings are the reference's
(NF4, double quantisation, float16 compute).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from deepsound.errors import ConfigError
from deepsound.weights.loading import LoadRules, apply_rules

if TYPE_CHECKING:
    from deepsound.models.videollama2.chat import VideoLlamaChat
    from deepsound.models.videollama2.spec import VideoLlamaSettings

_EXTRAS = ("mm_projector", "audio_tower", "mm_projector_a")
EXTRA_RULES = LoadRules(
    unwrap=(),
    keep=(r"^model\.(mm_projector|audio_tower|mm_projector_a)\.",),
)


def _quantization(kind: str | None, device: str) -> Any:
    if kind is None:
        return None
    if not device.startswith("cuda"):
        raise ConfigError(f"{kind} loading needs a CUDA device (bitsandbytes); this run is on {device}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"{kind} loading needs bitsandbytes: pip install bitsandbytes")
    import transformers

    if kind == "8bit":
        return transformers.BitsAndBytesConfig(load_in_8bit=True)
    return transformers.BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_compute_dtype=torch.float16,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_quant_type="nf4",
    )


def load_accelerated(
    folder: Path, tower: Path, settings: VideoLlamaSettings, *, dtype: torch.dtype, device: str, name: str
) -> VideoLlamaChat:
    import transformers

    from deepsound.models.videollama2.beats import beats_config_from_state
    from deepsound.models.videollama2.chat import VideoLlamaChat, load_generation, load_processor
    from deepsound.models.videollama2.model import (
        CHECKPOINT_RULES,
        TOWER_RULES,
        VideoLlama2,
        assign_strict,
        qwen2_config,
        read_config,
        read_folder_state,
    )

    if importlib.util.find_spec("accelerate") is None:
        raise ConfigError("offloaded or quantised loading needs accelerate: pip install accelerate")
    config = read_config(folder)
    extras = apply_rules(read_folder_state(folder, "VideoLLaMA2", prefix="model."), EXTRA_RULES)
    extras = {k[len("model.") :]: v for k, v in CHECKPOINT_RULES.transform(extras).items()}
    beats = beats_config_from_state(extras, "audio_tower.") if "mm_audio_tower" in config else None
    vision_config = transformers.SiglipVisionConfig.from_pretrained(str(tower))
    model = VideoLlama2.empty(config, vision_config, beats)
    placement: dict[str, Any] = {"device_map": "auto" if settings.offload else {"": device}}
    if settings.offload and settings.max_gpu_memory and device.startswith("cuda"):
        placement["max_memory"] = {0: settings.max_gpu_memory, "cpu": "1000GiB"}
    llm = transformers.Qwen2ForCausalLM.from_pretrained(
        str(folder),
        config=qwen2_config(config),
        dtype=dtype,
        quantization_config=_quantization(settings.quantization, device),
        **placement,
    )
    holder = nn.Module()
    for part in _EXTRAS:
        if hasattr(model.llm.model, part):
            holder.add_module(part, getattr(model.llm.model, part))
    assign_strict(holder, extras, folder, "VideoLLaMA2 connector and audio parts", dtype)
    first = llm.get_input_embeddings().weight.device
    for part, module in holder.named_children():
        llm.model.add_module(part, module.to(first))
    model.llm = llm
    tower_state = apply_rules(read_folder_state(tower, "SigLIP vision tower"), TOWER_RULES)
    assign_strict(model.vision, tower_state, tower, "SigLIP vision tower", dtype)
    model.vision.to(first)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    generation = load_generation(folder, qwen2_config(config))
    return VideoLlamaChat(model.eval(), tokenizer, load_processor(tower, model), generation, name=name)
