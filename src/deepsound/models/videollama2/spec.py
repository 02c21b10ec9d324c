"""How a VideoLLaMA2 reasoner is loaded: the checkpoints, placement, precision and memory options.

Made from the user's ``[pipeline.mllm]`` settings and the placement
(:meth:`VideoLlamaSettings.from_settings`); read by the plain loader
(:func:`deepsound.models.videollama2.reasoner.load_chat`) and the quantized or
offloaded one (:mod:`deepsound.models.videollama2.accelerated`), which is why it
sits in a module of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from deepsound.devices import resolve_dtype_name
from deepsound.errors import ConfigError
from deepsound.models.videollama2.chat import DEFAULT_MAX_NEW_TOKENS

if TYPE_CHECKING:
    from deepsound.interfaces import Placement
    from deepsound.models.videollama2.settings import VideoLlama2Settings

COT_MODEL = "lym0302/VideoLLaMA2.1-7B-AV-CoT"
QA_MODEL = "lym0302/VideoLLaMA2.1-7B-AV-QA"
MODES = ("cot", "qa")


@dataclass
class VideoLlamaSettings:
    """Everything that decides how the reasoner is loaded; ``from_settings`` fills it from the
    ``[pipeline.mllm]`` settings and the placement."""

    mode: Literal["cot", "qa"] = "cot"
    cot_model: str = COT_MODEL
    qa_model: str = QA_MODEL
    device: str = "auto"
    dtype: str = "auto"  # float16 on CUDA (the reference's), float32 on the CPU
    quantization: Literal["8bit", "4bit"] | None = None
    offload: bool = False  # spread over GPU and CPU memory with accelerate's device map
    max_gpu_memory: str | None = None  # e.g. "10GiB", with offload
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    weights_dir: Path | None = None
    offline: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown VideoLLaMA2 mode {self.mode!r}; choose cot or qa")
        if self.quantization not in (None, "8bit", "4bit"):
            raise ConfigError(f"quantization must be 8bit or 4bit, not {self.quantization!r}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"the MLLM token budget must be at least 1, got {self.max_new_tokens}")

    @classmethod
    def from_settings(
        cls, settings: VideoLlama2Settings, placement: Placement, mode: str
    ) -> VideoLlamaSettings:
        """``model`` is the CoT checkpoint (default the published one), ``judge_model`` the QA
        checkpoint of mode ``qa``."""
        return cls(
            mode=mode,  # type: ignore[arg-type]
            cot_model=settings.model or COT_MODEL,
            qa_model=settings.judge_model or QA_MODEL,
            device=placement.device,
            dtype=placement.dtype,
            quantization=settings.quantization,  # type: ignore[arg-type]
            offload=settings.offload,
            max_gpu_memory=settings.max_gpu_memory,
            max_new_tokens=settings.max_new_tokens,
            weights_dir=placement.weights_dir,
            offline=placement.offline,
        )

    def torch_device(self) -> str:
        from deepsound.weights.loading import resolve_device

        return resolve_device(self.device)

    def torch_dtype(self) -> torch.dtype:
        from deepsound.weights.loading import torch_dtype

        # the reference loads in float16 on CUDA
        return torch_dtype(resolve_dtype_name(self.dtype, self.torch_device(), on_cuda="float16"))
