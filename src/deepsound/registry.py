"""Component entries, and the components of one configuration built once and shared.

A component is known to the rest of the system through one :class:`Entry`, made with
:func:`register`::

    register(
        "generator", "mine", build_mine,          # build_mine(settings, components) -> a Generator
        settings=MineSettings,                    # a dataclass with defaults: [pipeline.generator] keys,
                                                  # CLI options (--mine-<field>) and the page's controls
        weight_files=(WeightFile(...), ...),      # or a function of the settings giving names/WeightFiles
        duration=(0.5, 30.0),                     # shortest and longest seconds it makes (None: no limit)
        sample_rate=24000,                        # or a function of the settings
        display_name="My generator",
        needs=(),                                 # kinds it asks its Components for, e.g. ("mllm",)
    )

Everything else is derived from the entries: the TOML table (:mod:`deepsound.config`), the CLI
options (:mod:`deepsound.cli.options`), ``deepsound config show``, ``deepsound weights list``
(the weight files are added to :mod:`deepsound.weights.registry`), the offline check naming every
missing file (:meth:`Components.missing_files`) and the web page's controls. A factory receives the
component's own settings and the :class:`Components` it belongs to, from which it reads only
:attr:`Components.placement` (device, precision, where the weights are) and shared components
(the speech detector, the MLLM); it never reads the whole pipeline configuration.

The step loop never imports a model. It asks :class:`Components` for ``generator``, ``judge`` …
and gets whatever the configuration names, built on first use and then reused for every clip of
the process. Building lazily matters: a batch where no clip holds speech never loads the 7B MLLM
nor the separator.

The module is long because the entry type, the one building of components and the built-in
entries belong together: this is the one page that says what exists and how it is made.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Protocol

from deepsound.errors import ConfigError
from deepsound.interfaces import (
    Generator,
    Judge,
    Mllm,
    Placement,
    Planner,
    Separator,
    SilenceDetector,
    SpeechDetector,
)
from deepsound.models.bs_roformer.settings import WEIGHT_FILES as BS_ROFORMER_FILES
from deepsound.models.bs_roformer.settings import BsRoformerSettings
from deepsound.models.foleycrafter import settings as foleycrafter
from deepsound.models.htdemucs.settings import WEIGHT_FILES as HTDEMUCS_FILES
from deepsound.models.htdemucs.settings import HTDemucsSettings
from deepsound.models.mmaudio import settings as mmaudio
from deepsound.models.qwen_omni.settings import OmniSettings
from deepsound.models.silero.settings import SileroSettings
from deepsound.models.ten_vad.settings import TenVadSettings
from deepsound.models.videollama2.settings import VideoLlama2Settings
from deepsound.steps.silence import SilenceSettings
from deepsound.steps.speech_gate import FusedGateSettings
from deepsound.steps.speech_staged import StagedGateSettings
from deepsound.steps.stem_speech import StemGateSettings
from deepsound.weights.registry import WeightFile
from deepsound.weights.registry import add as add_weight_file
from deepsound.weights.registry import remove as remove_weight_file

Factory = Callable[[Any, "Components"], Any]  # (the component's settings or None, components) -> component
WeightFiles = Sequence[str | WeightFile] | Callable[[Any], Sequence[str | WeightFile]]

KINDS = ("generator", "judge", "planner", "separator", "silence", "speech", "mllm")
# Built once per process, whatever the number of pipelines (the batch, the web page and the
# judge command in one process share them): the speech detector and the multi-GB MLLM.
SHARED_KINDS = ("speech", "mllm")
_SHARED: dict[tuple[Any, ...], Any] = {}
_SHARED_LOCK = threading.Lock()


@dataclass(frozen=True)
class Entry:
    """What the system knows about one component before it is built."""

    kind: str
    name: str
    factory: Factory
    settings: type | None = None  # a dataclass whose every field has a default
    weight_files: WeightFiles = ()
    duration: tuple[float, float | None] = (0.0, None)
    sample_rate: int | Callable[[Any], int] | None = None
    display_name: str = ""
    # the kinds it asks for through its Components (a judge that may ask the MLLM: ("mllm",)); the
    # offline check counts the MLLM's weight files only where a configured component asks for it
    needs: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.display_name or self.name

    def default_settings(self) -> Any:
        return self.settings() if self.settings is not None else None

    def files(self, settings: Any) -> list[str]:
        """Registry names of the weight files this component loads with ``settings``."""
        listed = self.weight_files(settings) if callable(self.weight_files) else self.weight_files
        return [f.name if isinstance(f, WeightFile) else str(f) for f in listed]

    def rate(self, settings: Any) -> int | None:
        return self.sample_rate(settings) if callable(self.sample_rate) else self.sample_rate

    def setting_fields(self) -> list[Any]:
        """The settings dataclass's fields (what the CLI, TOML and the page offer)."""
        return list(fields(self.settings)) if self.settings is not None else []


class ChosenComponent(Protocol):
    """A kind's section of the configuration: the chosen name and that component's settings."""

    name: str

    @property
    def selected(self) -> Any: ...


class Configuration(Protocol):
    """What the registry reads of a configuration (:class:`deepsound.config.PipelineConfig` is one;
    the registry sits below the configuration, which derives its tables from the entries)."""

    device: str
    dtype: str
    weights_dir: Path | None
    offline: bool
    weights: dict[str, Path]
    judge: str
    planner: str

    def section(self, kind: str) -> ChosenComponent: ...

    def resolved_device(self) -> str: ...


_ENTRIES: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
_LISTENERS: list[Callable[[], None]] = []


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever an entry is added or removed (the CLI re-derives its options)."""
    _LISTENERS.append(listener)


def _changed() -> None:
    for listener in list(_LISTENERS):
        listener()


def register(
    kind: str,
    name: str,
    factory: Factory,
    *,
    settings: type | None = None,
    weight_files: WeightFiles = (),
    duration: tuple[float, float | None] = (0.0, None),
    sample_rate: int | Callable[[Any], int] | None = None,
    display_name: str = "",
    needs: tuple[str, ...] = (),
) -> Entry:
    """Make ``name`` available for ``kind`` (e.g. a new video-to-audio model as a generator).

    ``weight_files`` given as :class:`WeightFile` objects are added to the weights registry, so
    that ``deepsound weights list|download|verify``, ``--weights NAME=PATH`` and the offline
    check know them.
    """
    if kind not in _ENTRIES:
        raise ConfigError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
    if settings is not None:
        if not is_dataclass(settings):
            raise ConfigError(f"the settings of {kind} {name!r} must be a dataclass, got {settings!r}")
        settings()  # every field needs a default: a run that names the component sets none of them
    if not callable(weight_files):
        for file in weight_files:
            if isinstance(file, WeightFile):
                add_weight_file(file)
    unknown = [k for k in needs if k not in KINDS]
    if unknown:
        raise ConfigError(
            f"{kind} {name!r} needs unknown kind(s) {', '.join(unknown)}; kinds: {', '.join(KINDS)}"
        )
    entry = Entry(
        kind, name, factory, settings, weight_files, duration, sample_rate, display_name, tuple(needs)
    )
    _ENTRIES[kind][name] = entry
    _changed()
    return entry


def unregister(kind: str, name: str) -> None:
    """Take ``name`` back (a test or a notebook that registered a component for a while)."""
    gone = _ENTRIES.get(kind, {}).pop(name, None)
    if gone is None:
        return
    if not callable(gone.weight_files):  # the files it brought go with it
        for file in gone.weight_files:
            if isinstance(file, WeightFile):
                remove_weight_file(file.name)
    _changed()


def available(kind: str) -> list[str]:
    return sorted(_ENTRIES[kind])


def entries(kind: str) -> list[Entry]:
    return [_ENTRIES[kind][name] for name in available(kind)]


def find(kind: str, name: str) -> Entry | None:
    return _ENTRIES.get(kind, {}).get(name)


def entry(kind: str, name: str) -> Entry:
    found = find(kind, name)
    if found is None:
        choices = ", ".join(available(kind)) or "none registered"
        raise ConfigError(f"unknown {kind} {name!r}; available: {choices}")
    return found


def uses_mllm(config: Configuration) -> bool:
    """Whether a run of ``config`` may ask the MLLM (then its weight files belong to the run): some
    configured component's entry says it needs one."""
    chosen = [("judge", config.judge), ("planner", config.planner)]
    chosen += [(kind, config.section(kind).name) for kind in ("generator", "separator", "silence")]
    return any("mllm" in found.needs for kind, name in chosen if (found := find(kind, name)) is not None)


def files_for(config: Configuration) -> list[str]:
    """Registry names of every weight file the configured components load (a user's own file stands in)."""
    names: list[str] = []
    for kind in ("generator", "separator", "speech", "silence", "mllm"):
        if kind == "mllm" and not uses_mllm(config):
            continue
        section = config.section(kind)
        found = find(kind, section.name)
        if found is not None:
            names += [n for n in found.files(section.selected) if n not in names]
    return [n for n in names if n not in config.weights]


def users_of_files() -> dict[str, list[str]]:
    """Weight-file name → the components that load it (with any of their choices), for ``weights list``."""
    users: dict[str, list[str]] = {}
    for kind in KINDS:
        for found in entries(kind):
            variants = [found.default_settings()]
            for f in found.setting_fields():
                for choice in f.metadata.get("choices", ()):
                    variants.append(dataclasses.replace(found.default_settings(), **{f.name: choice}))
            for settings in variants:
                for name in found.files(settings):
                    if found.label not in users.setdefault(name, []):
                        users[name].append(found.label)
    return users


def placement_of(config: Configuration) -> Placement:
    return Placement(
        device=config.device,
        dtype=config.dtype,
        weights_dir=config.weights_dir,
        offline=config.offline,
        weights=dict(config.weights),
        run_files=tuple(files_for(config)),
    )


class Components:
    """The components of one :class:`PipelineConfig`, built on first use.

    ``overrides`` supplies ready-made objects by kind (tests, notebooks that
    already hold a model, a custom judge object).
    """

    def __init__(self, config: Configuration, overrides: dict[str, Any] | None = None) -> None:
        self.config = config
        self._built: dict[str, Any] = dict(overrides or {})
        self.given = frozenset(self._built)  # ready-made: no factory can build these again
        self.load_seconds: dict[str, float] = {}  # how long each component took to build (model loads)
        self._placement: Placement | None = None
        # called with the kind before a component is built (deepsound.residency makes room with it)
        self.before_build: Callable[[str], None] | None = None
        unknown = set(self._built) - set(KINDS)
        if unknown:
            raise ConfigError(f"unknown component kind(s): {', '.join(sorted(unknown))}")
        # Names are checked now, against what is registered, so a typo fails before any model
        # loads and a user's registered component is as valid as a built-in one.
        for kind in KINDS:
            if kind not in self._built:
                self.entry(kind)

    @property
    def placement(self) -> Placement:
        """Device, precision and weights of this configuration: all a model reads besides its settings."""
        if self._placement is None:
            self._placement = placement_of(self.config)
        return self._placement

    def name_for(self, kind: str) -> str:
        """The configured component name of ``kind``."""
        if kind == "judge":
            return self.config.judge
        if kind == "planner":
            return self.config.planner
        return self.config.section(kind).name

    def settings_for(self, kind: str) -> Any:
        """The configured component's own settings (None for a component without settings)."""
        if kind in ("judge", "planner"):
            return None
        return self.config.section(kind).selected

    def entry(self, kind: str) -> Entry:
        return entry(kind, self.name_for(kind))

    def missing_files(self, cache_dir: Any = None) -> list[WeightFile]:
        """Every weight file this configuration needs that is nowhere on this machine."""
        from deepsound.weights.requirements import missing

        return missing(files_for(self.config), self.config.weights_dir, cache_dir)

    def get(self, kind: str) -> Any:
        if kind not in self._built:
            factory = self.entry(kind).factory
            settings = self.settings_for(kind)
            if self.before_build is not None:
                self.before_build(kind)
            # one that uses a kind built per configuration (the vocal-stem gate, its separator) is built per configuration too
            if kind in SHARED_KINDS and set(self.entry(kind).needs) <= set(SHARED_KINDS):
                key = self._shared_key(kind)
                with _SHARED_LOCK:
                    if key not in _SHARED:
                        start = time.perf_counter()
                        _SHARED[key] = factory(settings, self)
                        self.load_seconds[kind] = round(time.perf_counter() - start, 3)
                    self._built[kind] = _SHARED[key]
            else:
                start = time.perf_counter()
                self._built[kind] = factory(settings, self)
                self.load_seconds[kind] = round(time.perf_counter() - start, 3)
        return self._built[kind]

    def _shared_key(self, kind: str) -> tuple[Any, ...]:
        """Same name, settings and placement → the same object for the whole process."""
        c = self.config
        return (
            kind,
            self.name_for(kind),
            repr(self.settings_for(kind)),
            c.resolved_device(),
            c.dtype,
            str(c.weights_dir),
            c.offline,
        )

    def is_built(self, kind: str) -> bool:
        return kind in self._built

    def drop(self, *kinds: str) -> None:
        """Forget built components (and the process-wide copy of a shared one): the next use rebuilds."""
        for kind in kinds:
            if self._built.pop(kind, None) is not None and kind in SHARED_KINDS:
                with _SHARED_LOCK:
                    _SHARED.pop(self._shared_key(kind), None)

    @property
    def generator(self) -> Generator:
        return self.get("generator")

    @property
    def judge(self) -> Judge:
        return self.get("judge")

    @property
    def planner(self) -> Planner:
        return self.get("planner")

    @property
    def separator(self) -> Separator:
        return self.get("separator")

    @property
    def silence(self) -> SilenceDetector:
        return self.get("silence")

    @property
    def speech(self) -> SpeechDetector:
        return self.get("speech")

    @property
    def mllm(self) -> Mllm:
        return self.get("mllm")


# --- the built-in components (imports stay inside the factories: heavy, optional) ---


def _mmaudio(settings: mmaudio.MMAudioSettings, components: Components) -> Generator:
    from deepsound.models.mmaudio.generator import MMAudioGenerator

    # --residency one: MMAudio's own parts load one group at a time too (models/mmaudio/parts.py)
    staged = getattr(components.config, "residency", "all") == "one"
    return MMAudioGenerator.from_settings(settings, components.placement, staged=staged)


def _foleycrafter(settings: foleycrafter.FoleyCrafterSettings, components: Components) -> Generator:
    from deepsound.models.foleycrafter.generator import FoleyCrafterGenerator

    return FoleyCrafterGenerator.from_settings(settings, components.placement)


def _bs_roformer(settings: BsRoformerSettings, components: Components) -> Separator:
    from deepsound.models.bs_roformer.separator import BsRoformerSeparator

    # the speech gate reuses the process's one speech detector instead of loading a second
    detector = components.speech if settings.only_speech else None
    return BsRoformerSeparator.from_settings(settings, components.placement, speech_detector=detector)


def _htdemucs(settings: HTDemucsSettings, components: Components) -> Separator:
    from deepsound.models.htdemucs.separator import HTDemucsSeparator

    return HTDemucsSeparator.from_settings(settings, components.placement)


def _silero(settings: SileroSettings, _: Components) -> SpeechDetector:
    from deepsound.models.silero.detector import SileroSpeechDetector

    return SileroSpeechDetector.from_settings(settings)


def _ten(settings: TenVadSettings, _: Components) -> SpeechDetector:
    from deepsound.models.ten_vad.detector import TenSpeechDetector

    return TenSpeechDetector.from_settings(settings)


def _fused(settings: FusedGateSettings, _: Components) -> SpeechDetector:
    """Silero and TEN VAD (their default settings) on the same signal, combined by the gate's fitted rule."""
    from deepsound.models.silero.detector import SileroSpeechDetector
    from deepsound.models.ten_vad.detector import TenSpeechDetector
    from deepsound.steps.speech_gate import FusedSpeechDetector

    return FusedSpeechDetector(
        SileroSpeechDetector(),
        TenSpeechDetector(),
        min_silence_s=settings.min_silence_s,
        pad_s=settings.pad_s,
    )


def _staged(settings: StagedGateSettings, _: Components) -> SpeechDetector:
    """Silero (its default settings) first, RNNoise and Silero again where the first stage is unsure."""
    from deepsound.models.rnnoise.denoiser import RnnoiseDenoiser
    from deepsound.models.silero.detector import SileroSpeechDetector
    from deepsound.steps.speech_staged import StagedSpeechDetector

    return StagedSpeechDetector(
        SileroSpeechDetector(),
        RnnoiseDenoiser(),
        min_silence_s=settings.min_silence_s,
        pad_s=settings.pad_s,
    )


def _vocal_stem(settings: StemGateSettings, components: Components) -> SpeechDetector:
    """A registered frame detector on the configured separator's vocal stem (the separator is looked up per clip)."""
    from deepsound.steps.stem_speech import NAME, VocalStemSpeechDetector

    if settings.base == NAME:
        raise ConfigError(f"{NAME} cannot listen to its own stem; base: silero or ten")
    base = entry("speech", settings.base)
    return VocalStemSpeechDetector(
        base.factory(base.default_settings(), components), lambda: components.separator, settings
    )


def _rms(settings: SilenceSettings, _: Components) -> SilenceDetector:
    from deepsound.steps.silence import RmsSilenceDetector

    return RmsSilenceDetector.from_settings(settings)


def _mllm_silence(settings: SilenceSettings, components: Components) -> SilenceDetector:
    from deepsound.steps.mllm_silence import MllmSilenceDetector

    return MllmSilenceDetector.from_settings(settings, mllm=lambda: components.mllm)


def _with_adapter(mllm: Mllm, settings: Any) -> Mllm:
    """A LoRA adapter from ``deepsound finetune``, applied through the MLLM's own contract."""
    if getattr(settings, "adapter", None) is not None:
        mllm.apply_adapter(settings.adapter)
    return mllm


def _omni(settings: OmniSettings, components: Components) -> Mllm:
    from deepsound.models.qwen_omni.reasoner import OmniReasoner

    return _with_adapter(OmniReasoner.from_settings(settings, components.placement), settings)


def _videollama2_factory(mode: str) -> Factory:
    def build(settings: VideoLlama2Settings, components: Components) -> Mllm:
        from deepsound.models.videollama2.reasoner import VideoLlamaReasoner

        reasoner = VideoLlamaReasoner.from_settings(settings, components.placement, mode)
        return _with_adapter(reasoner, settings)

    return build


def _judge_factory(name: str) -> Factory:
    """Judges share the process's one speech detector and one (lazily loaded) MLLM."""

    def build(_: None, components: Components) -> Judge:
        from deepsound.steps.voice_over import build_judge

        return build_judge(name, speech=components.speech, mllm=lambda: components.mllm)

    return build


def _planner_factory(name: str) -> Factory:
    def build(_: None, components: Components) -> Planner:
        from deepsound.steps.plan import build_planner

        return build_planner(name, mllm=lambda: components.mllm)

    return build


register(
    "generator",
    "mmaudio",
    _mmaudio,
    settings=mmaudio.MMAudioSettings,
    weight_files=mmaudio.weight_files,
    duration=mmaudio.DURATION_RANGE,
    sample_rate=mmaudio.sample_rate,
    display_name="MMAudio",
)
register(
    "generator",
    "foleycrafter",
    _foleycrafter,
    settings=foleycrafter.FoleyCrafterSettings,
    weight_files=foleycrafter.WEIGHT_FILES,
    duration=foleycrafter.DURATION_RANGE,
    sample_rate=foleycrafter.SAMPLE_RATE,
    display_name=foleycrafter.DISPLAY_NAME,
)
register(
    "separator",
    "bs_roformer",
    _bs_roformer,
    settings=BsRoformerSettings,
    weight_files=BS_ROFORMER_FILES,
    display_name="BS-RoFormer (viperx)",
    needs=("speech",),  # its speech gate (only_speech) reuses the process's speech detector
)
register(
    "separator",
    "htdemucs",
    _htdemucs,
    settings=HTDemucsSettings,
    weight_files=HTDEMUCS_FILES,
    display_name="HTDemucs v4",
)
register("speech", "silero", _silero, settings=SileroSettings, display_name="Silero VAD")
register("speech", "ten", _ten, settings=TenVadSettings, display_name="TEN VAD")
register("speech", "fused", _fused, settings=FusedGateSettings, display_name="Silero + TEN VAD (fused)")
register(
    "speech",
    "staged",
    _staged,
    settings=StagedGateSettings,
    display_name="Silero VAD, RNNoise where unsure (staged)",
)
register(
    "speech",
    "vocal-stem",
    _vocal_stem,
    settings=StemGateSettings,
    display_name="VAD on the separator's vocal stem",
    needs=("separator",),  # separates each judged clip; step 3 reuses that separation
)
register("silence", "rms", _rms, settings=SilenceSettings, display_name="RMS rule (−50 dB on 90 % of frames)")
register(
    "silence", "mllm", _mllm_silence, settings=SilenceSettings, display_name="Ask the MLLM", needs=("mllm",)
)
register("mllm", "omni", _omni, settings=OmniSettings, display_name="Qwen2.5-Omni")
register(
    "mllm",
    "videollama2-cot",
    _videollama2_factory("cot"),
    settings=VideoLlama2Settings,
    display_name="VideoLLaMA2.1-AV-CoT",
)
register(
    "mllm",
    "videollama2-qa",
    _videollama2_factory("qa"),
    settings=VideoLlama2Settings,
    display_name="VideoLLaMA2.1-AV-CoT + QA",
)
for _name, _label, _needs in (
    ("cascade", "Cascade", ("speech", "mllm")),
    ("mllm", "MLLM", ("speech", "mllm")),
    ("speech", "Speech only", ("speech",)),
):
    register("judge", _name, _judge_factory(_name), display_name=_label, needs=_needs)
for _name, _label, _needs in (
    ("canonical", "The paper's four steps", ()),
    ("mllm", "Ask the MLLM", ("mllm",)),
):
    register("planner", _name, _planner_factory(_name), display_name=_label, needs=_needs)
