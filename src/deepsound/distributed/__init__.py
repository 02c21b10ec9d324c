"""Scale a batch out over Ray: many GPUs, many machines, resumable, each clip done once.

``deepsound batch INPUT -o DIR --ray auto`` on the command line; from Python::

    from deepsound.distributed import RayBatch
    with RayBatch(Pipeline(config), address="auto", gpus_per_worker=1) as pool:
        summary = pool.run(read_inputs(Path("clips.csv")), Path("out"), RunOptions())

Every node needs deepsound (and its weights, or access to the hub) installed, and the
output folder must be one shared file system path on all of them.
"""

from deepsound.distributed.cluster import DistributedError, RaySettings, WorkerShape, plan_workers
from deepsound.distributed.scheduler import BatchEvent, RayBatch, run_batch_ray
from deepsound.distributed.summary import DistributedOutcome, DistributedSummary

__all__ = [
    "BatchEvent",
    "DistributedError",
    "DistributedOutcome",
    "DistributedSummary",
    "RayBatch",
    "RaySettings",
    "WorkerShape",
    "plan_workers",
    "run_batch_ray",
]
