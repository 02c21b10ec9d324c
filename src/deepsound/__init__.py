"""DeepSound: step-by-step video-to-audio generation (DeepSound-V1).

    from deepsound import Pipeline, RunOptions
    pipe = Pipeline.from_config(generator={"variant": "small_16k"})
    result = pipe.run("clip.mp4", "outputs", RunOptions(prompt="rain"))

Names are imported on first use so that ``deepsound --help`` and light
helpers do not pay for torch and the models.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Audio": "deepsound.audio",
    "Pipeline": "deepsound.pipeline",
    "ClipResult": "deepsound.pipeline",
    "PipelineConfig": "deepsound.config",
    "RunOptions": "deepsound.config",
    "Components": "deepsound.registry",
    "register": "deepsound.registry",
    "load_settings": "deepsound.settings",
    "generate_audio": "deepsound.api",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deepsound' has no attribute {name!r}")
