"""The pipeline and run options, declared once and added to every command that runs the pipeline.

``generate``, ``batch``, ``ui`` and ``config show`` take the same options. Typer reads a
command's parameters from its signature, so instead of repeating them per command,
:func:`pipeline_options` appends them to the command's signature and hands the command
one :class:`~deepsound.settings.Settings`: the preset, then ``--config FILE``, then every
option the user actually gave (an option left out keeps the value of the layer below, so
defaults live only in :mod:`deepsound.config` and the components' settings dataclasses).

The options of the components' own settings are derived from their registry entries
(:func:`component_options`): a field's ``metadata`` may name its flag and help (MMAudio's
``variant`` is ``--variant``), otherwise the flag is ``--<component>-<field>``. A flag shared by
several components of one kind (every MLLM's ``--mllm-model``) sets the chosen component's
setting; one component's own flag sets that component's settings. The signatures follow the
registry: a component registered later (a notebook, a plug-in, a test) gets its options too.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deepsound import registry
from deepsound.config import DEFAULT_COMPONENTS, PipelineConfig, RunOptions
from deepsound.settings import PRESET_HELP, Settings, load_settings

if TYPE_CHECKING:
    from deepsound.pipeline import Pipeline


@dataclass(frozen=True)
class Opt:
    """One CLI option: its parameter name, type, flags, help and where it lands in the settings."""

    name: str
    type: Any
    flags: tuple[str, ...]
    help: str
    target: tuple[str, ...] = ()  # e.g. ("pipeline", "run", "seed"); () = handled by hand
    panel: str | None = None  # the --help section it is listed in (None: the command's options)


def _default(target: tuple[str, ...]) -> Any:
    obj: Any = {"pipeline": PipelineConfig(), "run": RunOptions()}[target[0]]
    for part in target[1:]:
        obj = getattr(obj, part)
    return obj


def _help(opt: Opt, default: Any = ...) -> str:
    if not opt.target or opt.type is bool:
        return opt.help
    default = _default(opt.target) if default is ... else default
    shown = "none" if default is None else ("" if default == "" else default)
    return f"{opt.help} (default: {shown})" if shown != "" else opt.help


OPTIONS: tuple[Opt, ...] = (
    Opt("preset", str | None, ("--preset",), "Settings to start from: " + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()) + " (default: default)"),
    Opt("config_file", Path | None, ("--config",), "TOML file of settings (see `deepsound config show`)."),
    Opt("mode", str | None, ("--mode",), "s3 stops after voice removal; s4 also checks silence.", ("run", "mode")),
    Opt("postprocess", str | None, ("--postprocess",), "When step 4 finds silence: rm (no audio), rep (step-1 audio), neg.", ("run", "postprocess")),
    Opt("judge", str | None, ("--judge",), "Voice-over judge: cascade (speech detector, then MLLM), mllm, speech, or a registered name.", ("pipeline", "judge")),
    Opt("speech", str | None, ("--speech",), "Speech detector of the gate, the separator and the dataset: staged, silero, ten, fused, vocal-stem, or a registered name.", ("pipeline", "speech", "name")),
    Opt("residency", str | None, ("--residency",), "Large models kept loaded: all, or one at a time (small GPUs and machines; a batch then runs stage by stage).", ("pipeline", "residency")),
    Opt("plan", str | None, ("--plan",), "canonical (the paper's 4 steps, no MLLM) or mllm (ask for the plan).", ("pipeline", "planner")),
    Opt("silence", str | None, ("--silence",), "Silence check: rms (signal rule) or mllm (ask).", ("pipeline", "silence", "name")),
    Opt("generator", str | None, ("--generator",), "Step-1 generator (a registered name).", ("pipeline", "generator", "name")),
    Opt("separator", str | None, ("--separator",), "Step-3 voice separator (a registered name).", ("pipeline", "separator", "name")),
    Opt("mllm", str | None, ("--mllm",), "Audio-visual LLM family (a registered name).", ("pipeline", "mllm", "name")),
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
    Opt("no_video", bool, ("--no-video",), "Write only the audio, not the muxed video."),
    Opt("no_intermediates", bool, ("--no-intermediates",), "Do not keep each step's audio."),
)  # fmt: skip

# flags that switch a setting on; left off they keep the lower layer's value
_FLAGS = {
    "offline": (("pipeline", "offline"), True),
    "no_video": (("run", "write_video"), False),
    "no_intermediates": (("run", "keep_intermediates"), False),
}


def _parameter(opt: Opt, help_text: str | None = None) -> inspect.Parameter:
    default: Any = False if opt.type is bool else None
    option = typer.Option(
        *opt.flags, help=help_text or _help(opt), show_default=False, rich_help_panel=opt.panel
    )
    annotation = Annotated[opt.type, option]
    return inspect.Parameter(opt.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_OPTION_TYPES = (str, int, float, Path)


def _option_type(hint: Any) -> Any | None:
    """The CLI type of a settings field (None: not offered on the command line, TOML only)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_args(hint) else [hint]
    if len(args) != 1:
        return None
    base = args[0]
    if base is bool:
        return bool | None
    return base | None if base in _OPTION_TYPES else None


def component_options() -> list[tuple[Opt, str]]:
    """One option per settings field of every registered component (see the module docstring),
    with its help text."""
    found: dict[str, dict[str, Any]] = {}
    for kind in DEFAULT_COMPONENTS:
        for entry in registry.entries(kind):
            if entry.settings is None:
                continue
            hints = typing.get_type_hints(entry.settings)
            defaults = entry.settings()
            for f in entry.setting_fields():
                cli_type = _option_type(hints[f.name])
                if cli_type is None:
                    continue
                flag = f.metadata.get("flag") or f"--{entry.name}-{f.name}".replace("_", "-")
                slot = found.setdefault(
                    flag,
                    {"kind": kind, "field": f.name, "type": cli_type, "owners": [], "meta": f.metadata,
                     "default": getattr(defaults, f.name)},
                )  # fmt: skip
                if slot["kind"] == kind and slot["field"] == f.name:
                    slot["owners"].append(entry)
    options = []
    for flag, slot in found.items():
        owners, kind, name = slot["owners"], slot["kind"], slot["field"]
        shared = len(owners) > 1
        target = ("pipeline", kind, name) if shared else ("pipeline", kind, owners[0].name, name)
        labels = ", ".join(o.label for o in owners)
        text = slot["meta"].get("help") or f"{name.replace('_', ' ')}"
        text = f"{text} ({kind}: {labels})"
        if "choices" in slot["meta"]:
            text += f"; one of: {', '.join(slot['meta']['choices'])}"
        is_bool = slot["type"] == (bool | None)
        flags = (f"{flag}/--no-{flag[2:]}",) if is_bool else (flag,)
        param = "".join(c if c.isalnum() else "_" for c in flag[2:])
        opt = Opt(param, slot["type"], flags, text, target, panel=f"{kind.capitalize()} settings")
        options.append((opt, text if is_bool else _help(opt, slot["default"])))
    return options


def _all_options() -> list[tuple[Opt, str | None]]:
    return [(opt, None) for opt in OPTIONS] + list(component_options())


def _put(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def settings_from_values(values: dict[str, Any]) -> Settings:
    """The options' values (None / False = not given) → settings over preset and file."""
    from deepsound.weights.overrides import parse_override

    overrides: dict[str, Any] = {}
    for opt, _ in _all_options():
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


def build_pipeline(settings: Settings) -> Pipeline:
    """The pipeline a command runs (one seam, so orchestration tests can hand in stand-ins).

    Offline, every weight file the run needs must be here: all that are missing are named
    in one line before anything loads.
    """
    from deepsound.errors import WeightsError
    from deepsound.pipeline import Pipeline
    from deepsound.weights.requirements import missing_message
    from deepsound.weights.resolve import offline_reason

    config = settings.pipeline
    pipeline = Pipeline(config)  # checks the component names first
    if reason := offline_reason(config.offline):
        missing = pipeline.components.missing_files()
        if missing:
            raise WeightsError(missing_message(missing, config.weights_dir, offline=reason))
    return pipeline


_WRAPPED: list[tuple[Callable[..., Any], inspect.Signature]] = []


def _sign(wrapper: Callable[..., Any], signature: inspect.Signature) -> None:
    """Give ``wrapper`` its command's own parameters plus every pipeline and component option."""
    own = [p for p in signature.parameters.values() if p.name != "settings"]
    params = own + [_parameter(opt, text) for opt, text in _all_options()]
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}


def _refresh() -> None:
    for wrapper, signature in _WRAPPED:
        _sign(wrapper, signature)


registry.on_change(_refresh)


def pipeline_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add every pipeline and component option to ``func``'s CLI and pass it ``settings=Settings``."""
    signature = inspect.signature(func, eval_str=True)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        names = {opt.name for opt, _ in _all_options()}
        values = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        return func(*args, settings=settings_from_values(values), **kwargs)

    del wrapper.__wrapped__  # Typer must read the new signature, not the original one
    _sign(wrapper, signature)
    _WRAPPED.append((wrapper, signature))
    return wrapper
