"""One-call helpers over :class:`deepsound.pipeline.Pipeline` for scripts and notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepsound.audio import Audio
from deepsound.config import PipelineConfig, RunOptions
from deepsound.pipeline import Pipeline

_PIPELINES: dict[tuple, Pipeline] = {}


def generate_audio(
    video: str | Path,
    output_dir: str | Path = "outputs",
    *,
    config: PipelineConfig | None = None,
    **options: Any,
) -> Audio | None:
    """Run the whole method on one video and return the final audio (None after an `rm` fallback).

    Pipelines are cached per configuration, so calling this in a loop loads the models once.
    """
    config = config or PipelineConfig()
    key = tuple(sorted((k, str(v)) for k, v in config.to_dict().items()))
    pipeline = _PIPELINES.get(key)
    if pipeline is None:
        pipeline = _PIPELINES[key] = Pipeline(config)
    return pipeline.run(video, output_dir, RunOptions(**options)).audio
