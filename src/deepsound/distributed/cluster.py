"""Connecting to Ray and deciding how many workers of what size to start.

Ray is the engine users with many GPUs already run; we only ask it for actors
with the resources one pipeline needs (``num_gpus`` = one GPU or a fraction of
one, ``num_cpus`` slots otherwise) and let its scheduler place them on nodes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from deepsound.errors import DeepSoundError

log = logging.getLogger(__name__)


class DistributedError(DeepSoundError):
    """Ray is missing, no cluster answers, or no worker could start."""


@dataclass
class RaySettings:
    """Where to run and how big each worker is; the rest of a batch is the same as on one machine.

    ``address``: ``auto`` (the cluster this machine belongs to, as ``ray start`` left it),
    ``local`` (start Ray on this machine only, for one box with several GPUs), or an
    address (``host:port`` or ``ray://host:10001``). ``None`` reuses a connection the caller
    already made with ``ray.init``.
    """

    address: str | None = "auto"
    workers: int | None = None  # None: as many as the cluster's resources fit
    gpus_per_worker: float | None = None  # None: 1 when the cluster has GPUs, else CPU workers
    cpus_per_worker: float = 1.0  # CPU slots per worker; also its torch thread count
    max_retries: int = 2  # times one clip is handed to another worker after its worker was lost
    max_replacements: int | None = None  # lost workers replaced in all (None: twice the worker count)
    summary_interval: float = 2.0  # seconds between incremental writes of batch_summary.json
    runtime_env: dict[str, Any] | None = None  # passed to ray.init (e.g. env_vars, py_modules)
    init_kwargs: dict[str, Any] = field(default_factory=dict)  # anything else ray.init takes

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise DistributedError(f"workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise DistributedError(f"gpus per worker must be >= 0, got {self.gpus_per_worker}")
        if not self.cpus_per_worker > 0:
            raise DistributedError(f"cpus per worker must be positive, got {self.cpus_per_worker}")
        if self.max_retries < 0:
            raise DistributedError(f"max retries must be >= 0, got {self.max_retries}")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DistributedError(
            "running on Ray needs the `dist` extra: pip install 'deepsound[dist]'"
        ) from None
    return ray


def connect(settings: RaySettings) -> bool:
    """Join (or start) a Ray cluster; True when this call connected, so the caller disconnects."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if settings.address is None:
        raise DistributedError("no Ray connection: call ray.init() first or give an address")
    address = None if settings.address == "local" else settings.address
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, **settings.init_kwargs}
    if settings.runtime_env is not None:
        kwargs["runtime_env"] = settings.runtime_env
    if address is None:
        kwargs.setdefault("include_dashboard", False)
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        hint = " (start one with `ray start --head`, or use --ray local)" if address == "auto" else ""
        raise DistributedError(f"no Ray cluster at {settings.address!r}{hint}: {exc}") from None
    return True


@dataclass(frozen=True)
class WorkerShape:
    """How many workers and what each asks Ray for."""

    count: int
    num_gpus: float
    num_cpus: float

    @property
    def uses_gpu(self) -> bool:
        return self.num_gpus > 0

    def describe(self) -> str:
        each = f"{self.num_gpus:g} GPU" if self.uses_gpu else f"{self.num_cpus:g} CPU"
        return f"{self.count} worker{'s' if self.count != 1 else ''} × {each}"


def plan_workers(settings: RaySettings, resources: dict[str, float], clips: int) -> WorkerShape:
    """Fit workers to the cluster (``ray.cluster_resources()``), never more than there are clips."""
    total_gpus = float(resources.get("GPU", 0.0))
    total_cpus = float(resources.get("CPU", 0.0))
    gpus = settings.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if total_gpus >= 1 else 0.0
    if gpus > 0:
        fits = math.floor(total_gpus / gpus + 1e-9)
        what = f"{total_gpus:g} GPUs at {gpus:g} per worker"
    else:
        fits = math.floor(total_cpus / settings.cpus_per_worker + 1e-9)
        what = f"{total_cpus:g} CPUs at {settings.cpus_per_worker:g} per worker"
    count = settings.workers if settings.workers is not None else fits
    if settings.workers is None and fits < 1:
        raise DistributedError(f"the Ray cluster has room for no worker ({what})")
    if settings.workers is not None and settings.workers > fits:
        log.warning("%d workers asked for, the cluster fits %d now (%s); the rest wait", count, fits, what)
    return WorkerShape(count=max(1, min(count, clips)), num_gpus=gpus, num_cpus=settings.cpus_per_worker)
