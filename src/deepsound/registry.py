"""Build components by name, once, and share them.

The step loop never imports a model. It asks :class:`Components` for
``generator``, ``judge`` … and gets whatever the configuration names, built on
first use and then reused for every clip of the process. Building lazily
matters: a batch where no clip holds speech never loads the 7B MLLM nor the
separator. Users add their own component with :func:`register`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from deepsound.config import PipelineConfig
from deepsound.errors import ConfigError

Factory = Callable[[PipelineConfig, "Components"], Any]

KINDS = ("generator", "judge", "planner", "separator", "silence", "speech", "mllm")
_FACTORIES: dict[str, dict[str, Factory]] = {kind: {} for kind in KINDS}
# Built once per process, whatever the number of pipelines (the batch, the web page and the
# judge command in one process share them): the speech detector and the multi-GB MLLM.
SHARED_KINDS = ("speech", "mllm")
_SHARED: dict[tuple[Any, ...], Any] = {}
_SHARED_LOCK = threading.Lock()


def register(kind: str, name: str, factory: Factory) -> None:
    """Make ``name`` available for ``kind`` (e.g. a new video-to-audio model as a generator)."""
    if kind not in _FACTORIES:
        raise ConfigError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
    _FACTORIES[kind][name] = factory


def unregister(kind: str, name: str) -> None:
    """Take ``name`` back (a test or a notebook that registered a component for a while)."""
    _FACTORIES.get(kind, {}).pop(name, None)


def available(kind: str) -> list[str]:
    return sorted(_FACTORIES[kind])


class Components:
    """The components of one :class:`PipelineConfig`, built on first use.

    ``overrides`` supplies ready-made objects by kind (tests, notebooks that
    already hold a model, a custom judge object).
    """

    def __init__(self, config: PipelineConfig, overrides: dict[str, Any] | None = None) -> None:
        self.config = config
        self._built: dict[str, Any] = dict(overrides or {})
        self.load_seconds: dict[str, float] = {}  # how long each component took to build (model loads)
        # called with the kind before a component is built (deepsound.residency makes room with it)
        self.before_build: Callable[[str], None] | None = None
        unknown = set(self._built) - set(KINDS)
        if unknown:
            raise ConfigError(f"unknown component kind(s): {', '.join(sorted(unknown))}")
        # Names are checked now, against what is registered, so a typo fails before any model
        # loads and a user's registered component is as valid as a built-in one.
        for kind in KINDS:
            if kind not in self._built:
                self._factory(kind)

    def name_for(self, kind: str) -> str:
        """The configured component name of ``kind``."""
        c = self.config
        names = {
            "generator": c.generator.name,
            "judge": c.judge,
            "planner": c.planner,
            "separator": c.separator.name,
            "silence": c.silence.name,
            "speech": c.speech.name,
            "mllm": c.mllm.name,
        }
        return names[kind]

    def _factory(self, kind: str) -> Factory:
        name = self.name_for(kind)
        factory = _FACTORIES[kind].get(name)
        if factory is None:
            choices = ", ".join(available(kind)) or "none registered"
            raise ConfigError(f"unknown {kind} {name!r}; available: {choices}")
        return factory

    def get(self, kind: str) -> Any:
        if kind not in self._built:
            factory = self._factory(kind)
            if self.before_build is not None:
                self.before_build(kind)
            if kind in SHARED_KINDS:
                key = self._shared_key(kind)
                with _SHARED_LOCK:
                    if key not in _SHARED:
                        start = time.perf_counter()
                        _SHARED[key] = factory(self.config, self)
                        self.load_seconds[kind] = round(time.perf_counter() - start, 3)
                    self._built[kind] = _SHARED[key]
            else:
                start = time.perf_counter()
                self._built[kind] = factory(self.config, self)
                self.load_seconds[kind] = round(time.perf_counter() - start, 3)
        return self._built[kind]

    def _shared_key(self, kind: str) -> tuple[Any, ...]:
        """Same name, settings and placement → the same object for the whole process."""
        c = self.config
        section = c.speech if kind == "speech" else c.mllm
        return (
            kind,
            self.name_for(kind),
            repr(section),
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
    def generator(self) -> Any:
        return self.get("generator")

    @property
    def judge(self) -> Any:
        return self.get("judge")

    @property
    def planner(self) -> Any:
        return self.get("planner")

    @property
    def separator(self) -> Any:
        return self.get("separator")

    @property
    def silence(self) -> Any:
        return self.get("silence")

    @property
    def speech(self) -> Any:
        return self.get("speech")

    @property
    def mllm(self) -> Any:
        return self.get("mllm")


# --- the built-in components (imports stay inside the factories: heavy, optional) ---


def _mmaudio(config: PipelineConfig, _: Components) -> Any:
    from deepsound.models.mmaudio.generator import MMAudioGenerator

    return MMAudioGenerator.from_config(config)


def _bs_roformer(config: PipelineConfig, components: Components) -> Any:
    from deepsound.models.bs_roformer.separator import BsRoformerSeparator

    # the speech gate reuses the process's one speech detector instead of loading a second
    detector = components.speech if config.separator.only_speech else None
    return BsRoformerSeparator.from_config(config, speech_detector=detector)


def _silero(config: PipelineConfig, _: Components) -> Any:
    from deepsound.models.silero.detector import SileroSpeechDetector

    return SileroSpeechDetector.from_config(config)


def _rms(config: PipelineConfig, _: Components) -> Any:
    from deepsound.steps.silence import RmsSilenceDetector

    return RmsSilenceDetector.from_config(config)


register("generator", "mmaudio", _mmaudio)
register("separator", "bs_roformer", _bs_roformer)
register("speech", "silero", _silero)
register("silence", "rms", _rms)


def _omni(config: PipelineConfig, _: Components) -> Any:
    from deepsound.models.qwen_omni.reasoner import OmniReasoner

    return OmniReasoner.from_config(config)


def _judge_factory(name: str) -> Factory:
    """Judges share the process's one speech detector and one (lazily loaded) MLLM."""

    def build(config: PipelineConfig, components: Components) -> Any:
        from deepsound.steps.voice_over import build_judge

        return build_judge(name, speech=components.speech, mllm=lambda: components.mllm)

    return build


def _planner_factory(name: str) -> Factory:
    def build(config: PipelineConfig, components: Components) -> Any:
        from deepsound.steps.plan import build_planner

        return build_planner(name, mllm=lambda: components.mllm)

    return build


def _mllm_silence(config: PipelineConfig, components: Components) -> Any:
    from deepsound.steps.mllm_silence import MllmSilenceDetector

    return MllmSilenceDetector.from_config(config, mllm=lambda: components.mllm)


def _videollama2_factory(mode: str) -> Factory:
    def build(config: PipelineConfig, _: Components) -> Any:
        from deepsound.models.videollama2.reasoner import VideoLlamaReasoner
        from deepsound.training.adapter import apply_configured_adapter

        return apply_configured_adapter(VideoLlamaReasoner.from_config(config, mode), config)

    return build


register("mllm", "omni", _omni)
register("mllm", "videollama2-cot", _videollama2_factory("cot"))
register("mllm", "videollama2-qa", _videollama2_factory("qa"))
register("silence", "mllm", _mllm_silence)
for _name in ("cascade", "mllm", "speech"):
    register("judge", _name, _judge_factory(_name))
for _name in ("canonical", "mllm"):
    register("planner", _name, _planner_factory(_name))
