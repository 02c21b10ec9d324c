"""One process, one set of models, many choices on the page.

The page lets a visitor pick the MMAudio variant and the voice-over judge of a
run, but those are :class:`~deepsound.config.PipelineConfig` settings, fixed
per :class:`~deepsound.pipeline.Pipeline`. :class:`PipelineFamily` keeps one
pipeline per choice that shares every model with the base pipeline: the
separator, speech detector, MLLM and silence check are the base's own objects,
a judge other than the base's is built once over the same speech detector and
MLLM, and a variant other than the base's loads its generator once, on first
use. Runs are queued one at a time (see :mod:`deepsound.ui.app`), so the lazy
builds never race.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from deepsound.config import PipelineConfig
from deepsound.pipeline import Pipeline
from deepsound.registry import Components


class _SharedComponents(Components):
    """The base pipeline's components, except the generator and/or judge this choice differs in."""

    def __init__(self, family: PipelineFamily, config: PipelineConfig) -> None:
        super().__init__(config)
        self._family = family
        self.load_seconds = family.base.components.load_seconds  # one account of model loads

    def get(self, kind: str) -> Any:
        base = self._family.base.config
        if kind == "generator" and self.config.generator.variant != base.generator.variant:
            return self._family.generator(self.config)
        if kind == "judge" and self.config.judge != base.judge:
            return super().get(kind)  # the registry's judge, over this object's speech and mllm
        return self._family.base.components.get(kind)

    def is_built(self, kind: str) -> bool:
        return kind in self._built or self._family.base.components.is_built(kind)


class PipelineFamily:
    """Pipelines for each (variant, judge) a visitor may choose, all over one set of models."""

    def __init__(self, base: Pipeline) -> None:
        self.base = base
        self._pipelines: dict[tuple[str, str], Pipeline] = {
            (base.config.generator.variant, base.config.judge): base
        }
        self._generators: dict[str, Any] = {}
        self._lock = threading.Lock()

    def pipeline(self, variant: str | None = None, judge: str | None = None) -> Pipeline:
        key = (variant or self.base.config.generator.variant, judge or self.base.config.judge)
        with self._lock:
            if key not in self._pipelines:
                generator = dataclasses.replace(self.base.config.generator, variant=key[0])
                config = dataclasses.replace(self.base.config, generator=generator, judge=key[1])
                self._pipelines[key] = Pipeline(config, _SharedComponents(self, config))
            return self._pipelines[key]

    def generator(self, config: PipelineConfig) -> Any:
        """The generator of ``config.generator.variant``, built on first use and kept."""
        variant = config.generator.variant
        if variant not in self._generators:
            components = Components(config)
            self._generators[variant] = components.generator
            seconds = components.load_seconds.get("generator", 0.0)
            self.base.components.load_seconds[f"generator {variant}"] = seconds
        return self._generators[variant]

    def judge(self, name: str | None = None) -> Any:
        return self.pipeline(judge=name).components.judge

    @property
    def separator(self) -> Any:
        return self.base.components.separator
