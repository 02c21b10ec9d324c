"""One typed configuration for the whole project; every default is written here, once.

:class:`PipelineConfig` is what loads once per process (which models, where, with what
settings), nested by component: ``generator``, ``mllm``, ``separator``, ``speech``,
``silence``. :class:`RunOptions` is per clip (prompt, seed, duration, mode, fallback).
Both are plain dataclasses so the CLI, the Python API, the web page, batch and Ray workers
build the same objects; :mod:`deepsound.settings` reads them from TOML (``--config``),
applies presets (``--preset paper``) and prints them back (``deepsound config show``).

Component *names* (``judge = "mine"``) are not checked here but against the component
registry when the pipeline is built, so a component registered with
:func:`deepsound.registry.register` is as valid as a built-in one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from deepsound.errors import ConfigError

MODES = ("s3", "s4")
POSTPROCESS = ("rm", "rep", "neg")
DTYPES = ("auto", "float32", "bfloat16", "float16")
NEGATIVE_PROMPT_FALLBACK = "human voice"  # the paper's `neg` fallback prompt


@dataclass
class GeneratorConfig:
    """Step 1: the video-to-audio model."""

    name: str = "mmaudio"
    variant: str = "large_44k_v2"  # small_16k, small_44k, medium_44k, large_44k, large_44k_v2
    # conditional and unconditional passes in one batch: None = on CUDA only (it costs memory)
    batched_cfg: bool | None = None
    compile: bool = False  # torch.compile the flow network (CUDA; pays off over many clips)

    def __post_init__(self) -> None:
        if self.name == "mmaudio":
            from deepsound.models.mmaudio.variants import VARIANTS

            _check("variant", self.variant, tuple(VARIANTS))


@dataclass
class MllmConfig:
    """The audio-visual LLM behind step 0, step 2 and (optionally) step 4."""

    name: str = "omni"  # a registered MLLM family: omni, videollama2-cot, videollama2-qa, …
    model: str | None = None  # hub id or local folder; None = the family's published model
    # the second model of a two-model family (VideoLLaMA2 "qa": the QA checkpoint answering step 2)
    judge_model: str | None = None
    # the paper's budget: a chain of thought cut before <CONCLUSION> decides nothing
    max_new_tokens: int = 2048
    adapter: Path | None = None  # a LoRA adapter folder to load onto the model
    fps: float | None = None  # frame sampling of the Qwen-Omni path (None: its default)
    max_frames: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    quantization: str | None = None  # "8bit" / "4bit" on CUDA (bitsandbytes)
    offload: bool = False  # spill layers to the CPU on small GPUs (device_map="auto")
    max_gpu_memory: str | None = None  # with offload, e.g. "10GiB"


@dataclass
class SeparatorConfig:
    """Step 3: voice removal (the rest of the mix, mix − vocals, is kept)."""

    name: str = "bs_roformer"
    only_speech: bool = False  # remove voice only around detected speech (cross-faded)
    crossfade_s: float = 0.1
    batch_size: int | None = None  # chunks per forward pass (None: the checkpoint's own)


@dataclass
class SpeechConfig:
    """The speech detector the cascade judge, the separator's gate and the dataset builder share."""

    name: str = "silero"
    threshold: float = 0.5
    min_speech_s: float = 0.25
    min_silence_s: float = 0.1
    pad_s: float = 0.03


@dataclass
class SilenceConfig:
    """Step 4: the paper's rule — silent when RMS < threshold on more than ``ratio`` of frames."""

    name: str = "rms"
    threshold_db: float = -50.0
    ratio: float = 0.9


@dataclass
class PipelineConfig:
    """What the models are and where they run: fixed for a process, shared by many clips."""

    device: str = "auto"  # "auto" picks CUDA when present
    dtype: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    weights_dir: Path | None = None
    offline: bool = False
    # per-file overrides NAME -> PATH: your own fine-tuned or converted checkpoint, loaded
    # strictly but without requiring the published bytes (recorded with its sha256)
    weights: dict[str, Path] = field(default_factory=dict)
    planner: str = "canonical"  # canonical (the paper's four steps, no MLLM) or mllm
    judge: str = "cascade"  # cascade (speech detector, MLLM only where speech is heard), mllm, speech
    # a judge that cannot decide counts as "no voice-over": the step-1 audio is kept as it is
    undecided_is_voice_over: bool = False
    residency: str = "all"  # "one": at most one large model loaded at a time (deepsound.residency)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    mllm: MllmConfig = field(default_factory=MllmConfig)
    separator: SeparatorConfig = field(default_factory=SeparatorConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    silence: SilenceConfig = field(default_factory=SilenceConfig)

    def __post_init__(self) -> None:
        _check("dtype", self.dtype, DTYPES)
        _check("residency", self.residency, ("all", "one"))
        if self.weights_dir is not None:
            self.weights_dir = Path(self.weights_dir)
        self.weights = {str(k): Path(v) for k, v in self.weights.items()}
        if self.mllm.adapter is not None:
            self.mllm.adapter = Path(self.mllm.adapter)

    def resolved_device(self) -> str:
        from deepsound.weights.loading import resolve_device  # torch loads only when a model does

        return resolve_device(self.device)

    def resolved_dtype(self) -> str:
        if self.dtype != "auto":
            return self.dtype
        return "bfloat16" if self.resolved_device().startswith("cuda") else "float32"

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        return from_plain(cls, data, "pipeline")


@dataclass
class RunOptions:
    """Per-clip settings of one run of the step loop."""

    prompt: str = ""
    negative_prompt: str = ""
    # seconds to generate, as the paper's pipeline and evaluation do (10 s clips); shortened to
    # the video; None = the whole video (MMAudio is trained on 8 s, so long single passes trade
    # some quality for continuity — see `window`)
    duration: float | None = 10.0
    seed: int = 42
    num_steps: int = 25
    cfg_strength: float = 4.5
    mode: str = "s4"  # s3 stops after voice removal; s4 also checks silence
    postprocess: str = "neg"  # what step 4 does with silence: rm, rep or neg
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

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunOptions:
        return from_plain(cls, data, "run")


def _check(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(allowed)}")


# ---------------------------------------------------------------- plain data <-> dataclasses


def to_plain(obj: Any) -> Any:
    """Dataclasses → dicts, paths → strings (what JSON and TOML hold)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj


def from_plain(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build ``cls`` from nested dicts; an unknown key is a clear error naming where it was."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{where}] must be a table, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)} in "
            f"[{where}]; known: {', '.join(known)}"
        )
    defaults = cls()
    values: dict[str, Any] = {}
    for name, value in data.items():
        current = getattr(defaults, name)
        if is_dataclass(current):
            values[name] = from_plain(type(current), value, f"{where}.{name}")
        else:
            values[name] = _coerce(value, current, f"{where}.{name}")
    return cls(**values)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Check a scalar against the type of its default (ints may stand for floats)."""
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, Path | str) and isinstance(value, str | Path):
        return type(default)(value) if isinstance(default, Path) else str(value)
    if isinstance(default, dict) and isinstance(value, dict):
        return value
    if not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(default, bool):
        raise ConfigError(f"{where} must be {type(default).__name__}, got {value!r}")
    return value
