"""``--ray``, ``--workers`` and ``--gpus-per-worker``, as ``batch`` takes them, for the commands
whose work spreads over Ray item by item (``evaluate``, ``experiment``, ``reference build``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

Ray = Annotated[
    str | None,
    typer.Option("--ray", help="Run on Ray: auto (the running cluster), local, or ADDRESS (host:port)."),
]
Workers = Annotated[int | None, typer.Option(help="Ray workers (default: as many as fit).")]
GpusPerWorker = Annotated[
    float | None, typer.Option(help="GPUs per Ray worker (0.5 shares one; 0: CPU workers).")
]


def ray_settings(address: str | None, workers: int | None, gpus_per_worker: float | None) -> Any:
    """The Ray settings of the options, or None when ``--ray`` was not given."""
    if address is None:
        if workers is not None or gpus_per_worker is not None:
            from deepsound.errors import ConfigError

            raise ConfigError("--workers and --gpus-per-worker need --ray")
        return None
    from deepsound.distributed.cluster import RaySettings

    return RaySettings(address=address, workers=workers, gpus_per_worker=gpus_per_worker)
