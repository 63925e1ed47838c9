"""Open the Dask client that params.yaml's `executor:` section asks for.

`local` means no Dask at all (the stages run in this process); `local_cluster` starts a
`LocalCluster` of worker processes on loopback for the duration of one stage; `address`
connects to a running scheduler (Dask on Kubernetes, the Dask Helm chart, `dask scheduler`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from defectflow.errors import ConfigError
from defectflow.params import ExecutorParams

if TYPE_CHECKING:
    from distributed import Client, Worker

KINDS = ("local", "local_cluster", "address")
ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"


def is_distributed(executor: ExecutorParams | None) -> bool:
    """True when the stages should run on Dask rather than in this process."""
    if executor is None:
        return False
    check(executor)
    return executor.kind != "local"


def check(executor: ExecutorParams) -> None:
    """Reject an executor section that cannot work, naming the key to fix."""
    if executor.kind not in KINDS:
        raise ConfigError(f"executor.kind={executor.kind!r}; choose one of {', '.join(KINDS)}")
    if executor.kind == "local_cluster" and (executor.n_workers < 1 or executor.threads_per_worker < 1):
        raise ConfigError("executor.n_workers and executor.threads_per_worker must be ≥ 1 for kind=local_cluster")
    if executor.kind == "address" and not scheduler_address(executor):
        raise ConfigError(f"executor.kind=address needs executor.address (tcp://host:8786) or ${ADDRESS_ENV}")
    if executor.shard_size < 1 or executor.task_retries < 0:
        raise ConfigError("executor.shard_size must be ≥ 1 and executor.task_retries ≥ 0")


def scheduler_address(executor: ExecutorParams) -> str | None:
    return executor.address or os.environ.get(ADDRESS_ENV) or None


@contextlib.contextmanager
def dask_client(executor: ExecutorParams) -> Iterator[Client]:
    """A connected client for a distributed executor; a LocalCluster lives only inside the block.

    Called on a Dask worker (a Prefect flow on `DaskTaskRunner`) of the cluster the executor
    names, it connects to that worker's own scheduler instead of nesting a cluster; from a plain
    Dask task it uses `worker_client()`, whose thread secedes so the stage's tasks can use that
    worker too. (Prefect runs task code in a thread without Dask's task context, where seceding
    is impossible: that worker's thread stays busy waiting, so give workers ≥ 2 threads there.)
    """
    from distributed import Client, LocalCluster, worker_client

    check(executor)
    if executor.kind == "local":
        raise ConfigError("executor.kind=local runs in-process; there is no Dask client to open")
    worker = _worker_of(executor)
    if worker is not None:
        in_task = _task_worker() is not None
        with worker_client() if in_task else Client(worker.scheduler.address, timeout="30s") as client:
            yield client
        return
    if executor.kind == "address":
        address = scheduler_address(executor)
        try:
            client = Client(address, timeout="30s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {exc}; "
                              "check executor.address and that the scheduler is running") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=executor.n_workers, threads_per_worker=executor.threads_per_worker,
                      processes=True, host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(executor.n_workers)  # shard and rank placement need every worker present
        yield client


def _worker_of(executor: ExecutorParams) -> Worker | None:
    """The Dask worker running this code if it belongs to the executor's cluster (any cluster
    for local_cluster: a worker process cannot start a cluster of its own, and its own cluster
    is the one the flow chose), else None."""
    from distributed.worker import Worker

    worker = _task_worker()
    if worker is None:
        # Outside Dask's task context (Prefect's task thread) the worker of this process is still
        # known to distributed: the registry get_client() itself used before task contexts.
        worker = next(iter(Worker._instances), None)
    if worker is None:
        return None
    if executor.kind == "local_cluster" or worker.scheduler.address == scheduler_address(executor):
        return worker
    return None


def _task_worker() -> Worker | None:
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def worker_addresses(client: Client) -> list[str]:
    """Current workers, sorted so that data placement is repeatable run to run."""
    return sorted(client.scheduler_info()["workers"])
