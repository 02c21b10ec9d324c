"""VideoLLaMA2's settings (``[pipeline.mllm]`` for ``videollama2-cot`` / ``videollama2-qa``).

``model`` is the CoT checkpoint (default the published one), ``judge_model`` the QA
checkpoint that answers step 2 in mode ``qa``. Light: read by the registry before any
model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepsound.errors import ConfigError
from deepsound.interfaces import MllmSettings


@dataclass
class VideoLlama2Settings(MllmSettings):
    # the second model of the two-model family ("qa": the QA checkpoint answering step 2)
    judge_model: str | None = field(
        default=None,
        metadata={"help": "the QA checkpoint answering step 2 in mode qa", "flag": "--mllm-judge-model"},
    )
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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quantization not in (None, "8bit", "4bit"):
            raise ConfigError(f"quantization must be 8bit or 4bit, not {self.quantization!r}")
