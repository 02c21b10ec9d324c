"""One typed configuration for the whole project; every default is written once.

:class:`PipelineConfig` is what loads once per process (which models, where, with what
settings), with one :class:`Section` per component kind: ``generator``, ``mllm``,
``separator``, ``speech``, ``silence``. A section names the chosen component and holds
the settings of each component configured, keyed by component name; each component's
settings are its own dataclass, declared by its registry entry
(:func:`deepsound.registry.register`), so a component registered from outside the
package gets a settings table like a built-in one. :class:`RunOptions` is per clip
(prompt, seed, duration, mode, fallback). Both are plain dataclasses so the CLI, the
Python API, the web page, batch and Ray workers build the same objects;
:mod:`deepsound.settings` reads them from TOML (``--config``), applies presets
(``--preset paper``) and prints them back (``deepsound config show``).

Component *names* (``judge = "mine"``) are checked against the component registry when the
pipeline is built, so a component registered with :func:`deepsound.registry.register` is
as valid as a built-in one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from deepsound import registry
from deepsound.devices import resolve_device, resolve_dtype_name
from deepsound.errors import ConfigError
from deepsound.interfaces import DEFAULT_DURATION

MODES = ("s3", "s4")
POSTPROCESS = ("rm", "rep", "neg")
DTYPES = ("auto", "float32", "bfloat16", "float16")
NEGATIVE_PROMPT_FALLBACK = "human voice"  # the paper's `neg` fallback prompt
NONE = "none"  # TOML has no null: this string stands for "no value" where a setting may have none
# the component each kind uses unless the configuration names another
DEFAULT_COMPONENTS = {
    "generator": "mmaudio",
    "mllm": "omni",
    "separator": "bs_roformer",
    "speech": "staged",
    "silence": "rms",
}


@dataclass
class Section:
    """One kind's chosen component (``name``) and the settings of each component configured.

    ``settings`` maps a component name to its settings dataclass; the chosen component's
    settings are always there (its defaults unless given). Attribute access reads the chosen
    component's settings, so ``config.generator.variant`` is MMAudio's variant when the
    generator is MMAudio. In TOML each component's settings sit in a sub-table named after it
    (``[pipeline.generator] name = "mmaudio"`` and ``[pipeline.generator.mmaudio] variant =
    "small_16k"``), so that settings written for one generator wait while another is chosen.
    A key written in the section itself (``[pipeline.generator] variant = "small_16k"``, and
    what the CLI's shared options set) belongs to the component chosen where it is written
    (:func:`keyed`).
    """

    kind: str
    name: str
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.settings = dict(self.settings)  # never share the dict with the section this was copied from
        if self.name not in self.settings:
            found = registry.find(self.kind, self.name)
            if found is not None and found.settings is not None:
                self.settings[self.name] = found.default_settings()

    @classmethod
    def of(cls, kind: str, name: str | None = None, **values: Any) -> Section:
        """``Section.of("generator", variant="small_16k")``: the chosen component with some settings."""
        name = name or DEFAULT_COMPONENTS[kind]
        if not values:
            return cls(kind, name)
        found = registry.entry(kind, name)
        if found.settings is None:
            raise ConfigError(f"{kind} {name!r} has no settings; got {', '.join(values)}")
        return cls(kind, name, {name: found.settings(**values)})

    @property
    def selected(self) -> Any:
        """The chosen component's settings (None for a component without settings)."""
        return self.settings.get(self.name)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr in ("kind", "name", "settings"):
            raise AttributeError(attr)
        selected = self.__dict__.get("settings", {}).get(self.__dict__.get("name"))
        if selected is not None and hasattr(selected, attr):
            return getattr(selected, attr)
        raise AttributeError(
            f"{self.__dict__.get('kind')} {self.__dict__.get('name')!r} has no setting {attr!r}"
        )

    @classmethod
    def from_plain(cls, kind: str, data: Any, where: str) -> Section:
        """The TOML table: ``name``, the chosen component's settings, other components' sub-tables."""
        if not isinstance(data, dict):
            raise ConfigError(f"[{where}] must be a table, got {type(data).__name__}")
        name = str(data.get("name", DEFAULT_COMPONENTS[kind]))
        tables = {k: v for k, v in data.items() if isinstance(v, dict) and registry.find(kind, k) is not None}
        flat = {k: v for k, v in data.items() if k != "name" and k not in tables}
        settings: dict[str, Any] = {}
        for component, values in tables.items():
            if component != name:
                settings[component] = _settings_from_plain(kind, component, values, f"{where}.{component}")
        if flat or name in tables:
            values = {**tables.get(name, {}), **flat}
            settings[name] = _settings_from_plain(kind, name, values, where)  # the section's own keys
        return cls(kind, name, settings)

    def to_plain(self, *, toml: bool = False) -> dict[str, Any]:
        """The inverse of :meth:`from_plain`: ``name`` and a sub-table per component (``toml``: a None
        left out, or "none" where the default is not None)."""
        out: dict[str, Any] = {"name": self.name}
        chosen_first = sorted(self.settings.items(), key=lambda item: item[0] != self.name)
        for component, value in chosen_first:
            if value is not None:
                out[component] = _plain_settings(value, toml)
        return out


def keyed(layer: dict[str, Any], below: dict[str, Any]) -> dict[str, Any]:
    """``layer`` (one layer of settings: a preset, a file, the options) with each section's own keys
    moved into the sub-table of the component chosen at that layer (its ``name``, else the name of the
    layers ``below``, else the default), so that layering never mixes two components' settings."""
    pipeline = layer.get("pipeline")
    if not isinstance(pipeline, dict):
        return layer
    out = {**layer, "pipeline": dict(pipeline)}
    for kind, default in DEFAULT_COMPONENTS.items():
        table = pipeline.get(kind)
        if not isinstance(table, dict):
            continue
        below_table = (below.get("pipeline") or {}).get(kind) or {}
        name = str(table.get("name") or below_table.get("name") or default)
        own = {
            k: v
            for k, v in table.items()
            if k != "name" and not (isinstance(v, dict) and registry.find(kind, k) is not None)
        }
        if not own:
            continue
        rest = {k: v for k, v in table.items() if k not in own}
        rest[name] = {**(rest.get(name) or {}), **own}
        out["pipeline"][kind] = rest
    return out


def _settings_from_plain(kind: str, name: str, values: dict[str, Any], where: str) -> Any:
    found = registry.entry(kind, name)
    if found.settings is None:
        if values:
            raise ConfigError(
                f"unknown setting(s) {', '.join(map(repr, values))} in [{where}]: {kind} {name!r} has none"
            )
        return None
    return from_plain(found.settings, values, where)


def _plain_settings(obj: Any, toml: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    defaults = type(obj)()
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None and toml:
            if getattr(defaults, f.name) is not None:
                out[f.name] = NONE  # left out, the default (not None) would come back
        else:
            out[f.name] = to_plain(value)
    return out


def GeneratorConfig(name: str | None = None, **settings: Any) -> Section:  # noqa: N802 - kept name
    """The ``generator`` section (MMAudio unless ``name`` says otherwise) with some settings."""
    return Section.of("generator", name, **settings)


def MllmConfig(name: str | None = None, **settings: Any) -> Section:  # noqa: N802 - kept name
    return Section.of("mllm", name, **settings)


def SeparatorConfig(name: str | None = None, **settings: Any) -> Section:  # noqa: N802 - kept name
    return Section.of("separator", name, **settings)


def SpeechConfig(name: str | None = None, **settings: Any) -> Section:  # noqa: N802 - kept name
    return Section.of("speech", name, **settings)


def SilenceConfig(name: str | None = None, **settings: Any) -> Section:  # noqa: N802 - kept name
    return Section.of("silence", name, **settings)


def _section(kind: str) -> Any:
    return field(default_factory=lambda: Section(kind, DEFAULT_COMPONENTS[kind]))


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
    generator: Section = _section("generator")
    mllm: Section = _section("mllm")
    separator: Section = _section("separator")
    speech: Section = _section("speech")
    silence: Section = _section("silence")

    def __post_init__(self) -> None:
        _check("dtype", self.dtype, DTYPES)
        _check("residency", self.residency, ("all", "one"))
        if self.weights_dir is not None:
            self.weights_dir = Path(self.weights_dir)
        self.weights = {str(k): Path(v) for k, v in self.weights.items()}

    def section(self, kind: str) -> Section:
        """The section of component ``kind`` (generator, mllm, separator, speech, silence)."""
        if kind not in DEFAULT_COMPONENTS:
            raise ConfigError(f"no settings section for {kind!r}; sections: {', '.join(DEFAULT_COMPONENTS)}")
        return getattr(self, kind)

    def resolved_device(self) -> str:
        return resolve_device(self.device)

    def resolved_dtype(self) -> str:
        return resolve_dtype_name(self.dtype, self.resolved_device())

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
    duration: float | None = DEFAULT_DURATION
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
        from deepsound.run_numbers import check_run_numbers

        check_run_numbers(self)

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
    if isinstance(obj, Section):
        return obj.to_plain()
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
        if isinstance(current, Section):
            values[name] = Section.from_plain(current.kind, value, f"{where}.{name}")
        elif is_dataclass(current):
            values[name] = from_plain(type(current), value, f"{where}.{name}")
        elif value == NONE and "None" in str(known[name].type):
            values[name] = None
        else:
            values[name] = _coerce(value, current, f"{where}.{name}")
            if "choices" in known[name].metadata:  # a settings field that declares its choices
                _check(name, values[name], tuple(known[name].metadata["choices"]))
    try:
        return cls(**values)
    except TypeError as exc:  # a settings dataclass that checks its values itself
        raise ConfigError(f"[{where}]: {exc}") from None


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
