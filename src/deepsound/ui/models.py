"""One process, one set of models, many choices on the page.

The page lets a visitor pick the generator, its settings that offer choices (MMAudio's
variant) and the voice-over judge of a run; those controls are derived from the registry
entries (:func:`generator_controls`), so a generator registered from outside the package
appears with its own choices. They are :class:`~deepsound.config.PipelineConfig`
settings, fixed per :class:`~deepsound.pipeline.Pipeline`. :class:`PipelineFamily` keeps
one pipeline per choice that shares every model with the base pipeline: the separator,
speech detector, MLLM and silence check are the base's own objects, a judge other than the
base's is built once over the same speech detector and MLLM, and a generator other than the
base's loads once, on first use. Runs are queued one at a time (see :mod:`deepsound.ui.app`),
so the lazy builds never race.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

from deepsound import registry
from deepsound.config import PipelineConfig, Section
from deepsound.interfaces import Generator, Judge, Separator
from deepsound.pipeline import Pipeline
from deepsound.registry import Components


@dataclass(frozen=True)
class Control:
    """One choice the page offers for a generator's setting (a dropdown)."""

    generator: str  # the component name
    field: str
    label: str
    choices: tuple[str, ...]
    value: str


def choice_fields(name: str) -> list[Any]:
    """The settings fields of generator ``name`` that declare their choices (``metadata["choices"]``)."""
    entry = registry.find("generator", name)
    return [f for f in (entry.setting_fields() if entry else []) if "choices" in f.metadata]


def generator_controls(config: PipelineConfig, variants: tuple[str, ...] | None = None) -> list[Control]:
    """A dropdown per choice field of every registered generator; ``variants`` narrows the chosen
    generator's first choice field (``deepsound ui --variants``)."""
    controls = []
    for entry in registry.entries("generator"):
        chosen = entry.name == config.generator.name
        current = config.generator.selected if chosen else entry.default_settings()
        for index, f in enumerate(choice_fields(entry.name)):
            choices = tuple(f.metadata["choices"])
            value = str(getattr(current, f.name))
            if chosen and index == 0 and variants:
                choices = tuple(variants)
                value = choices[0]
            label = f"{entry.label} {f.metadata.get('help', f.name.replace('_', ' '))}"
            controls.append(Control(entry.name, f.name, label, choices, value))
    return controls


def _generator_key(section: Section) -> tuple[str, str]:
    return section.name, repr(section.selected)


class _SharedComponents(Components):
    """The base pipeline's components, except the generator and/or judge this choice differs in."""

    def __init__(self, family: PipelineFamily, config: PipelineConfig) -> None:
        super().__init__(config)
        self._family = family
        self.load_seconds = family.base.components.load_seconds  # one account of model loads

    def get(self, kind: str) -> Any:
        base = self._family.base.config
        if kind == "generator" and _generator_key(self.config.generator) != _generator_key(base.generator):
            return self._family.generator(self.config)
        if kind == "judge" and self.config.judge != base.judge:
            return super().get(kind)  # the registry's judge, over this object's speech and mllm
        return self._family.base.components.get(kind)

    def is_built(self, kind: str) -> bool:
        return kind in self._built or self._family.base.components.is_built(kind)


class PipelineFamily:
    """Pipelines for each (generator and its settings, judge) a visitor may choose, over one set of models."""

    def __init__(self, base: Pipeline) -> None:
        self.base = base
        self._pipelines: dict[tuple[Any, ...], Pipeline] = {
            (*_generator_key(base.config.generator), base.config.judge): base
        }
        self._generators: dict[tuple[str, str], Generator] = {}
        self._lock = threading.Lock()

    def pipeline(
        self,
        variant: str | None = None,
        judge: str | None = None,
        *,
        generator: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Pipeline:
        """The pipeline of ``generator`` (default the base's) with ``settings`` changed, and ``judge``;
        ``variant`` sets the generator's first choice field (MMAudio's variant)."""
        base = self.base.config
        name = generator or base.generator.name
        changes = dict(settings or {})
        fields_with_choices = choice_fields(name)
        if variant is not None and fields_with_choices:
            changes.setdefault(fields_with_choices[0].name, variant)
        section = base.generator if name == base.generator.name else Section("generator", name)
        if changes:
            chosen = dataclasses.replace(section.selected, **changes)
            section = Section("generator", name, {**section.settings, name: chosen})
        config = dataclasses.replace(base, generator=section, judge=judge or base.judge)
        key = (*_generator_key(section), config.judge)
        with self._lock:
            if key not in self._pipelines:
                self._pipelines[key] = Pipeline(config, _SharedComponents(self, config))
            return self._pipelines[key]

    def generator(self, config: PipelineConfig) -> Generator:
        """The generator of ``config`` (name and settings), built on first use and kept."""
        key = _generator_key(config.generator)
        if key not in self._generators:
            components = Components(config)
            self._generators[key] = components.generator
            seconds = components.load_seconds.get("generator", 0.0)
            label = " ".join(str(v) for v in (key[0], *_choice_values(config.generator)))
            self.base.components.load_seconds[f"generator {label}"] = seconds
        return self._generators[key]

    def judge(self, name: str | None = None) -> Judge:
        return self.pipeline(judge=name).components.judge

    @property
    def separator(self) -> Separator:
        return self.base.components.separator


def _choice_values(section: Section) -> list[Any]:
    return [getattr(section.selected, f.name) for f in choice_fields(section.name)]
