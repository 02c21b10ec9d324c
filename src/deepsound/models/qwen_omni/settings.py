"""Qwen-Omni's settings (``[pipeline.mllm]`` when the MLLM is ``omni``): the common MLLM settings
plus its frame sampling and memory options. Light: read by the registry before any model loads."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepsound.interfaces import MllmSettings


@dataclass
class OmniSettings(MllmSettings):
    fps: float | None = None  # frame sampling (None: the reasoner's default)
    max_frames: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    quantization: str | None = field(
        default=None,
        metadata={"help": "8bit or 4bit weights on CUDA (bitsandbytes)", "flag": "--mllm-quantization"},
    )
    offload: bool = field(
        default=False, metadata={"help": "spill layers to the CPU on small GPUs", "flag": "--mllm-offload"}
    )
    max_gpu_memory: str | None = field(
        default=None, metadata={"help": "with offload, e.g. 10GiB", "flag": "--mllm-max-gpu-memory"}
    )
