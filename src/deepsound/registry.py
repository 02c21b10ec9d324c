"""Build components by name, once, and share them.

The step loop never imports a model. It asks :class:`Components` for
``generator``, ``judge`` … and gets whatever the configuration names, built on
first use and then reused for every clip of the process. Building lazily
matters: a batch where no clip holds speech never loads the 7B MLLM nor the
separator. Users add their own component with :func:`register`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from deepsound.config import PipelineConfig
from deepsound.errors import ConfigError

Factory = Callable[[PipelineConfig, "Components"], Any]

KINDS = ("generator", "judge", "planner", "separator", "silence", "speech", "mllm")
_FACTORIES: dict[str, dict[str, Factory]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str, factory: Factory) -> None:
    """Make ``name`` available for ``kind`` (e.g. a new video-to-audio model as a generator)."""
    if kind not in _FACTORIES:
        raise ConfigError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
    _FACTORIES[kind][name] = factory


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
        unknown = set(self._built) - set(KINDS)
        if unknown:
            raise ConfigError(f"unknown component kind(s): {', '.join(sorted(unknown))}")

    def _name_for(self, kind: str) -> str:
        names = {
            "generator": self.config.generator,
            "judge": self.config.judge,
            "planner": self.config.planner,
            "separator": self.config.separator,
            "silence": self.config.silence,
            "speech": "silero",
            "mllm": _mllm_name(self.config),
        }
        return names[kind]

    def get(self, kind: str) -> Any:
        if kind not in self._built:
            name = self._name_for(kind)
            factory = _FACTORIES[kind].get(name)
            if factory is None:
                choices = ", ".join(available(kind)) or "none registered"
                raise ConfigError(f"unknown {kind} {name!r}; available: {choices}")
            start = time.perf_counter()
            self._built[kind] = factory(self.config, self)
            self.load_seconds[kind] = round(time.perf_counter() - start, 3)
        return self._built[kind]

    def is_built(self, kind: str) -> bool:
        return kind in self._built

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
    detector = components.speech if config.separate_only_speech else None
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

        return build_judge(name, config, speech=components.speech, mllm=lambda: components.mllm)

    return build


def _planner_factory(name: str) -> Factory:
    def build(config: PipelineConfig, components: Components) -> Any:
        from deepsound.steps.plan import build_planner

        return build_planner(name, config, mllm=lambda: components.mllm)

    return build


def _mllm_silence(config: PipelineConfig, components: Components) -> Any:
    from deepsound.steps.mllm_silence import MllmSilenceDetector

    return MllmSilenceDetector.from_config(config, mllm=lambda: components.mllm)


def _mllm_name(config: PipelineConfig) -> str:
    """The configured MLLM: ``config.mllm`` (a name, or a section with ``name``), else ``extra["mllm"]``."""
    value = getattr(config, "mllm", None)
    value = value if isinstance(value, str) else getattr(value, "name", None)
    return value or config.extra.get("mllm", "omni")


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
