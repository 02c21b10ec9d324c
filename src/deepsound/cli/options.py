"""The pipeline and run options, declared once and added to every command that runs the pipeline.

``generate``, ``batch``, ``ui`` and ``experiment`` take the same two dozen options. Typer
reads a command's parameters from its signature, so instead of repeating them per command,
:func:`pipeline_options` appends them to the command's signature and hands the command
one :class:`~deepsound.settings.Settings`: the preset, then ``--config FILE``, then every
option the user actually gave (an option left out keeps the value of the layer below, so
defaults live only in :mod:`deepsound.config`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from deepsound.config import PipelineConfig, RunOptions
from deepsound.settings import PRESET_HELP, Settings, load_settings


@dataclass(frozen=True)
class Opt:
    """One CLI option: its parameter name, type, flags, help and where it lands in the settings."""

    name: str
    type: Any
    flags: tuple[str, ...]
    help: str
    target: tuple[str, ...] = ()  # e.g. ("pipeline", "generator", "variant"); () = handled by hand


def _default(target: tuple[str, ...]) -> Any:
    obj: Any = {"pipeline": PipelineConfig(), "run": RunOptions()}[target[0]]
    for part in target[1:]:
        obj = getattr(obj, part)
    return obj


def _help(opt: Opt) -> str:
    if not opt.target or opt.type is bool:
        return opt.help
    default = _default(opt.target)
    shown = "none" if default is None else ("" if default == "" else default)
    return f"{opt.help} (default: {shown})" if shown != "" else opt.help


OPTIONS: tuple[Opt, ...] = (
    Opt("preset", str | None, ("--preset",), "Settings to start from: " + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()) + " (default: default)"),
    Opt("config_file", Path | None, ("--config",), "TOML file of settings (see `deepsound config show`)."),
    Opt("variant", str | None, ("--variant",), "MMAudio variant: small_16k, small_44k, medium_44k, large_44k, large_44k_v2.", ("pipeline", "generator", "variant")),
    Opt("mode", str | None, ("--mode",), "s3 stops after voice removal; s4 also checks silence.", ("run", "mode")),
    Opt("postprocess", str | None, ("--postprocess",), "When step 4 finds silence: rm (no audio), rep (step-1 audio), neg.", ("run", "postprocess")),
    Opt("judge", str | None, ("--judge",), "Voice-over judge: cascade (speech detector, then MLLM), mllm, speech, or a registered name.", ("pipeline", "judge")),
    Opt("residency", str | None, ("--residency",), "Large models kept loaded: all, or one at a time (small GPUs and machines; a batch then runs stage by stage).", ("pipeline", "residency")),
    Opt("plan", str | None, ("--plan",), "canonical (the paper's 4 steps, no MLLM) or mllm (ask for the plan).", ("pipeline", "planner")),
    Opt("silence", str | None, ("--silence",), "Silence check: rms (signal rule) or mllm (ask).", ("pipeline", "silence", "name")),
    Opt("generator", str | None, ("--generator",), "Step-1 generator (a registered name).", ("pipeline", "generator", "name")),
    Opt("separator", str | None, ("--separator",), "Step-3 voice separator (a registered name).", ("pipeline", "separator", "name")),
    Opt("mllm", str | None, ("--mllm",), "Audio-visual LLM family: omni, videollama2-cot, videollama2-qa.", ("pipeline", "mllm", "name")),
    Opt("mllm_model", str | None, ("--mllm-model",), "Hub id or local folder of the audio-visual LLM (default: the family's published model).", ("pipeline", "mllm", "model")),
    Opt("max_new_tokens", int | None, ("--max-new-tokens",), "Token budget of each MLLM answer.", ("pipeline", "mllm", "max_new_tokens")),
    Opt("mllm_adapter", Path | None, ("--mllm-adapter",), "LoRA adapter folder to load onto the MLLM.", ("pipeline", "mllm", "adapter")),
    Opt("prompt", str | None, ("--prompt",), "Text prompt for generation.", ("run", "prompt")),
    Opt("negative_prompt", str | None, ("--negative-prompt",), "Negative prompt for generation.", ("run", "negative_prompt")),
    Opt("duration", float | None, ("--duration",), "Seconds of audio to generate (shortened to the video).", ("run", "duration")),
    Opt("whole", bool, ("--whole",), "Generate for the whole video."),
    Opt("window", float | None, ("--window",), "Generate longer audio in cross-faded windows of this many seconds (e.g. 8).", ("run", "window")),
    Opt("seed", int | None, ("--seed",), "Random seed (the neg fallback reuses it).", ("run", "seed")),
    Opt("num_steps", int | None, ("--steps",), "Flow-matching Euler steps.", ("run", "num_steps")),
    Opt("cfg_strength", float | None, ("--cfg",), "Classifier-free guidance strength.", ("run", "cfg_strength")),
    Opt("device", str | None, ("--device",), "auto, cpu, cuda, cuda:1 …", ("pipeline", "device")),
    Opt("dtype", str | None, ("--dtype",), "auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16 or float16.", ("pipeline", "dtype")),
    Opt("weights_dir", Path | None, ("--weights-dir",), "Folder with weights/ and ext_weights/ (MMAudio layout).", ("pipeline", "weights_dir")),
    Opt("weights", list[str] | None, ("--weights",), "NAME=PATH: load your own file for a published one (fine-tuned or converted; checked strictly, recorded with its sha256). Repeatable."),
    Opt("offline", bool, ("--offline",), "Never download; fail with a clear message instead."),
    Opt("only_speech", bool, ("--only-speech",), "Remove voice only around detected speech."),
    Opt("no_video", bool, ("--no-video",), "Write only the audio, not the muxed video."),
    Opt("no_intermediates", bool, ("--no-intermediates",), "Do not keep each step's audio."),
)  # fmt: skip

# flags that switch a setting on; left off they keep the lower layer's value
_FLAGS = {
    "offline": (("pipeline", "offline"), True),
    "only_speech": (("pipeline", "separator", "only_speech"), True),
    "no_video": (("run", "write_video"), False),
    "no_intermediates": (("run", "keep_intermediates"), False),
}


def _parameter(opt: Opt) -> inspect.Parameter:
    default: Any = False if opt.type is bool else None
    annotation = Annotated[opt.type, typer.Option(*opt.flags, help=_help(opt), show_default=False)]
    return inspect.Parameter(opt.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _put(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def settings_from_values(values: dict[str, Any]) -> Settings:
    """The options' values (None / False = not given) → settings over preset and file."""
    from deepsound.weights.overrides import parse_override

    overrides: dict[str, Any] = {}
    for opt in OPTIONS:
        value = values.get(opt.name)
        if opt.target and value is not None:
            _put(overrides, opt.target, value)
    for name, (path, on) in _FLAGS.items():
        if values.get(name):
            _put(overrides, path, on)
    if values.get("whole"):
        _put(overrides, ("run", "duration"), "none")
    if values.get("weights"):
        _put(overrides, ("pipeline", "weights"), dict(parse_override(v) for v in values["weights"]))
    return load_settings(values.get("preset") or "default", values.get("config_file"), overrides)


def build_pipeline(settings: Settings) -> Any:
    """The pipeline a command runs (one seam, so orchestration tests can hand in stand-ins).

    Offline, every weight file the run needs must be here: all that are missing are named
    in one line before anything loads.
    """
    from deepsound.errors import WeightsError
    from deepsound.pipeline import Pipeline
    from deepsound.weights import offline_from_env
    from deepsound.weights.requirements import missing_for, missing_message

    config = settings.pipeline
    pipeline = Pipeline(config)  # checks the component names first
    if config.offline or offline_from_env():
        missing = missing_for(config)
        if missing:
            raise WeightsError(missing_message(missing, config.weights_dir, offline=True))
    return pipeline


def pipeline_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add every option of :data:`OPTIONS` to ``func``'s CLI and pass it ``settings=Settings``."""
    signature = inspect.signature(func, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "settings"]
    added = [_parameter(opt) for opt in OPTIONS]
    names = {opt.name for opt in OPTIONS}

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        return func(*args, settings=settings_from_values(values), **kwargs)

    params = own + added
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must read the new signature, not the original one
    return wrapper
