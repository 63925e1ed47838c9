"""The Prefect task runner that matches params.yaml's `executor:`: with a distributed executor
the flow's tasks themselves run on the Dask cluster (prefect-dask's `DaskTaskRunner`), and the
featurize/train stages inside those tasks reuse that cluster through `worker_client()`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from defectflow.distributed.executor import is_distributed, scheduler_address
from defectflow.params import ExecutorParams

if TYPE_CHECKING:
    from prefect_dask import DaskTaskRunner


def dask_task_runner(executor: ExecutorParams) -> DaskTaskRunner | None:
    """A `DaskTaskRunner` for the executor's cluster, or None for `local` (keep the flow's own)."""
    if not is_distributed(executor):
        return None
    from prefect_dask import DaskTaskRunner

    if executor.kind == "address":
        return DaskTaskRunner(address=scheduler_address(executor))
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": executor.n_workers,
                                          "threads_per_worker": executor.threads_per_worker,
                                          "processes": True, "host": "127.0.0.1", "dashboard_address": None})
