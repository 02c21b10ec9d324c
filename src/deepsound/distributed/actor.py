"""The Ray actor: one pipeline per worker process, many clips through it.

The actor builds its pipeline once, in its own process, from what the driver
sent: a :class:`~deepsound.pipeline.Pipeline` whose components are not yet built
(they build lazily on first use, so a worker that never meets speech never loads
the MLLM or the separator) or a zero-argument factory returning one. Each clip
then goes through :func:`deepsound.batch.run_one`, exactly as in a one-machine
batch: the same atomic writes, the trace written last, failures caught and
returned as an outcome instead of raised.

This module imports no Ray at the top: the class is wrapped with ``ray.remote``
by the scheduler, and stays importable (and testable) without Ray.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepsound.batch import BatchItem, ItemOutcome, is_finished, run_one
from deepsound.config import RunOptions
from deepsound.output_paths import OutputPaths
from deepsound.pipeline import Pipeline
from deepsound.registry import KINDS

PipelineSource = Pipeline | Callable[[], Pipeline]


class ClipWorker:
    """One worker: ``info()`` once after start, then ``run(item, ...)`` per clip."""

    def __init__(self, name: str, source: PipelineSource, threads: int, uses_gpu: bool) -> None:
        start = time.perf_counter()
        self.name = name
        self.error: str | None = None
        self.pipeline: Pipeline | None = None
        if not uses_gpu:
            # A CPU worker on a GPU node must not grab a GPU another worker was given;
            # CUDA reads this when first initialised, which has not happened yet here.
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        try:
            import torch

            torch.set_num_threads(max(1, threads))
            self.pipeline = source if isinstance(source, Pipeline) else source()
            if not isinstance(self.pipeline, Pipeline):
                raise TypeError(f"the pipeline factory returned {type(self.pipeline).__name__}")
        except Exception as exc:  # reported to the driver, which drops this worker
            self.error = f"{type(exc).__name__}: {exc}"
            self.traceback = traceback.format_exc()
        self.setup_seconds = round(time.perf_counter() - start, 3)

    def info(self) -> dict[str, Any]:
        """Where this worker runs; ``error`` set when its pipeline could not be made."""
        gpu_ids: list[str] = []
        ray = sys.modules.get("ray")  # inside a Ray worker it is loaded; outside, asking would start one
        if ray is not None and ray.is_initialized():
            gpu_ids = [str(g) for g in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])]
        return {
            "name": self.name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "gpu_ids": gpu_ids,
            "setup_seconds": self.setup_seconds,
            "error": self.error,
        }

    def run(self, item: BatchItem, output_dir: str, options: RunOptions, overwrite: bool) -> dict[str, Any]:
        """Run one clip; returns the outcome and which components this worker has built so far."""
        assert self.pipeline is not None, "run called on a worker whose setup failed"
        out = Path(output_dir)
        if overwrite and is_finished(out, item.video):
            # Redoing a clip: drop its old trace first, so that if this worker dies mid-run
            # the clip reads as unfinished rather than as done with half-new files.
            OutputPaths.for_clip(out, item.video).trace.unlink(missing_ok=True)
        outcome: ItemOutcome = run_one(self.pipeline, item, out, options, overwrite)
        components = self.pipeline.components
        return {
            "outcome": outcome,
            "built": [kind for kind in KINDS if components.is_built(kind)],
            "load_seconds": dict(components.load_seconds),
        }
