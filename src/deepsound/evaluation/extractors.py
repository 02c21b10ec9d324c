"""What a feature model must offer the evaluation, and which five there are.

The runner knows nothing about networks: it hands each file to an
:class:`Extractor` and stores what comes back under av-benchmark's cache file
names. An extractor says which cache files it fills, whether it reads the
audio or the video of a file, and a *fingerprint* (weight checksum and every
setting that changes its output), so a cache made under other settings or
weights is never mistaken for a current one.

The five models of the paper's metrics are registered by name; each entry
builds the model lazily (the networks live in :mod:`deepsound.models.eval`)
so that asking for FD-VGG alone never loads ImageBind. Tests and other
models register their own factories with :func:`register_extractor`.
"""

from __future__ import annotations

from collections.abc import Callable

from deepsound.errors import ConfigError
from deepsound.evaluation import builtin_models
from deepsound.evaluation.features import Extractor, Modality, OffsetHead, Settings, Source

__all__ = [
    "Extractor",
    "Modality",
    "OffsetHead",
    "Settings",
    "Source",
    "build_extractor",
    "register_extractor",
]

Factory = Callable[[Settings], Extractor]
_FACTORIES: dict[tuple[str, str], Factory] = {}
_HEADS: dict[str, Callable[[Settings], OffsetHead]] = {}

MODELS = ("panns", "vggish", "passt", "imagebind", "synchformer", "silero")
# which models each metric needs; video models run on the --videos folder (reference side)
METRIC_MODELS: dict[str, tuple[tuple[str, Modality], ...]] = {
    "fd_passt": (("passt", "audio"),),
    "kl_passt": (("passt", "audio"),),
    "fd_panns": (("panns", "audio"),),
    "kl_panns": (("panns", "audio"),),
    "is_panns": (("panns", "audio"),),
    "fd_vgg": (("vggish", "audio"),),
    "ib_score": (("imagebind", "audio"), ("imagebind", "video")),
    "desync": (("synchformer", "audio"), ("synchformer", "video")),
    "voice_over_rate": (("panns", "audio"), ("silero", "audio")),
}
METRICS = tuple(METRIC_MODELS)


def register_extractor(name: str, modality: Modality, factory: Factory) -> None:
    """Make ``factory`` build the ``name`` model for ``modality`` (replaces a previous one)."""
    _FACTORIES[(name, modality)] = factory


def register_offset_head(name: str, factory: Callable[[Settings], OffsetHead]) -> None:
    _HEADS[name] = factory


def build_extractor(name: str, modality: Modality, settings: Settings) -> Extractor:
    _load_defaults()
    factory = _FACTORIES.get((name, modality))
    if factory is None:
        known = ", ".join(f"{n}/{m}" for n, m in sorted(_FACTORIES))
        raise ConfigError(f"no {modality} feature model {name!r}; known: {known or 'none'}")
    return factory(settings)


def build_offset_head(settings: Settings, name: str = "synchformer") -> OffsetHead:
    _load_defaults()
    if name not in _HEADS:
        raise ConfigError(f"no offset head {name!r} for DeSync")
    return _HEADS[name](settings)


def models_for(metrics: list[str] | tuple[str, ...]) -> list[tuple[str, Modality]]:
    """The (model, modality) pairs the chosen metrics need, each once, in a stable order."""
    unknown = [m for m in metrics if m not in METRIC_MODELS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from: {', '.join(METRICS)}")
    seen: list[tuple[str, Modality]] = []
    for metric in metrics:
        for pair in METRIC_MODELS[metric]:
            if pair not in seen:
                seen.append(pair)
    return seen


_defaults_loaded = False


def _load_defaults() -> None:
    """Register the built-in models once, on first use (importing them is cheap; loading is lazy)."""
    global _defaults_loaded
    if _defaults_loaded:
        return
    _defaults_loaded = True
    for (name, modality), factory in builtin_models.FACTORIES.items():
        _FACTORIES.setdefault((name, modality), factory)
    for name, factory in builtin_models.HEADS.items():
        _HEADS.setdefault(name, factory)
