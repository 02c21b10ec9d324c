"""One source of defaults for the whole pipeline.

The CLI, the Python API, batch runs and distributed workers all build a
:class:`PipelineConfig` (models: what loads once per process) and pass
:class:`RunOptions` (per clip: prompt, seed, duration). Defaults follow the
paper's released pipeline unless a field's comment says otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from deepsound.errors import ConfigError

VARIANTS = ("small_16k", "small_44k", "medium_44k", "large_44k", "large_44k_v2")
MODES = ("s3", "s4")
POSTPROCESS = ("rm", "rep", "neg")
JUDGES = ("cascade", "mllm", "speech")
PLANNERS = ("canonical", "mllm")
SILENCE = ("rms", "mllm")
NEGATIVE_PROMPT_FALLBACK = "human voice"  # the paper's `neg` fallback prompt


@dataclass
class PipelineConfig:
    """What the models are and where they run: fixed for a process, shared by many clips."""

    variant: str = "large_44k_v2"
    device: str = "auto"  # "auto" picks CUDA when present
    dtype: Literal["float32", "bfloat16", "auto"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    weights_dir: Path | None = None
    offline: bool = False
    generator: str = "mmaudio"
    judge: str = "cascade"
    planner: str = "canonical"
    silence: str = "rms"
    separator: str = "bs_roformer"
    mllm_model: str = "Qwen/Qwen2.5-Omni-7B"
    mllm_max_new_tokens: int = 512
    # remove voice only around detected speech (cross-fade), leaving the rest of the mix untouched
    separate_only_speech: bool = False
    silence_threshold_db: float = -50.0
    silence_ratio: float = 0.9
    # a judge that cannot decide counts as "voice-over" (safe side: separation rarely hurts)
    undecided_is_voice_over: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check("variant", self.variant, VARIANTS)
        _check("judge", self.judge, JUDGES)
        _check("planner", self.planner, PLANNERS)
        _check("silence", self.silence, SILENCE)
        if self.weights_dir is not None:
            self.weights_dir = Path(self.weights_dir)

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def resolved_dtype(self) -> str:
        if self.dtype != "auto":
            return self.dtype
        return "bfloat16" if self.resolved_device().startswith("cuda") else "float32"

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class RunOptions:
    """Per-clip settings of one run of the step loop."""

    prompt: str = ""
    negative_prompt: str = ""
    # seconds to generate; None = the whole video in one pass (MMAudio is trained on 8 s windows,
    # so very long single passes trade some quality for continuity)
    duration: float | None = 8.0
    seed: int = 42
    num_steps: int = 25
    cfg_strength: float = 4.5
    mode: str = "s4"
    postprocess: str = "neg"
    # longer stretches are generated in windows of this many seconds, cross-faded (None: one pass)
    window: float | None = None
    window_overlap: float = 1.0
    write_video: bool = True
    keep_intermediates: bool = True

    def __post_init__(self) -> None:
        _check("mode", self.mode, MODES)
        _check("postprocess", self.postprocess, POSTPROCESS)
        if self.duration is not None and not self.duration > 0:
            raise ConfigError(f"duration must be positive, got {self.duration}")
        if self.window is not None and not 0 <= self.window_overlap < self.window:
            raise ConfigError(f"window overlap must be in [0, {self.window}), got {self.window_overlap}")
        if self.num_steps < 1:
            raise ConfigError(f"number of steps must be at least 1, got {self.num_steps}")

    def replace(self, **changes: Any) -> RunOptions:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return RunOptions(**values)


def _check(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(allowed)}")
