"""Where a run's configuration comes from: a preset, then a TOML file, then explicit options.

``deepsound generate --preset paper --config my.toml --steps 50`` is read in that order,
each layer overriding the one before; :func:`dump_toml` writes the effective result in
the same format, so ``deepsound config show > my.toml`` and ``--config my.toml`` round-trip.

The file has two tables, ``[pipeline]`` (with sub-tables ``[pipeline.generator]``,
``[pipeline.mllm]``, ``[pipeline.separator]``, ``[pipeline.speech]``, ``[pipeline.silence]``,
each holding ``name`` and the named component's own settings, derived from the settings
dataclass of its registry entry) and ``[run]``. TOML has no null: a setting left out keeps
its default, and the string ``"none"`` stands for "no value" where a setting may have none
(``duration = "none"``: the whole video).
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import tomli_w

from deepsound.config import NONE, PipelineConfig, RunOptions, Section, keyed, to_plain
from deepsound.errors import ConfigError

# The reference demo's settings (DeepSound-V1 `demo.py`): MMAudio large_44k for 10 s, the
# fine-tuned VideoLLaMA2 planning and judging, s4 with the neg fallback; step 3 as the reference's
# `Step3` does it: step 1 loaded at 44.1 kHz by librosa (soxr "HQ", mono duplicated to stereo) and
# the instrumental kept at that rate and in those channels (step 4 and an s3 run's final audio then
# hear that file, as in the reference).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": {
        "pipeline": {
            "generator": {"variant": "large_44k"},
            "planner": "mllm",
            "judge": "mllm",
            "mllm": {"name": "videollama2-cot"},
            "separator": {"bs_roformer": {"resample_quality": "HQ", "output_format": "model"}},
        },
        "run": {"duration": 10.0, "mode": "s4", "postprocess": "neg"},
    },
}
PRESET_HELP = {
    "default": "MMAudio large_44k_v2, canonical plan, cascade judge (Silero first, MLLM only on speech)",
    "paper": "the paper's demo: MMAudio large_44k, 10 s, VideoLLaMA2-CoT plans and judges, s4, neg; "
    "step 3 kept at 44.1 kHz stereo (soxr HQ), as the reference keeps it",
}


@dataclass
class Settings:
    pipeline: PipelineConfig
    run: RunOptions


def load_settings(
    preset: str = "default", config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Preset ⊕ file ⊕ overrides (nested dicts shaped like the file) → typed settings."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    layers = [PRESETS[preset]]
    if config_file is not None:
        layers.append(read_toml(config_file))
    if overrides:
        layers.append(overrides)
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, keyed(layer, merged))
    unknown = sorted(set(merged) - {"pipeline", "run"})
    if unknown:
        raise ConfigError(
            f"unknown table(s) {', '.join(unknown)} in the configuration; use [pipeline] and [run]"
        )
    return Settings(
        pipeline=PipelineConfig.from_dict(merged.get("pipeline", {})),
        run=RunOptions.from_dict(merged.get("run", {})),
    )


def read_toml(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def deep_merge(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "weights":
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def dump_toml(settings: Settings) -> str:
    """The effective settings as TOML that :func:`load_settings` reads back to equal objects."""
    data = {"pipeline": _for_toml(settings.pipeline), "run": _for_toml(settings.run)}
    return tomli_w.dumps(data)


def _for_toml(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    defaults = type(obj)()
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, Section):
            out[f.name] = value.to_plain(toml=True)
        elif is_dataclass(value):
            out[f.name] = _for_toml(value)
        elif value is None:
            if getattr(defaults, f.name) is not None:
                out[f.name] = NONE  # left out, the default (not None) would come back
        else:
            out[f.name] = to_plain(value)
    return out
