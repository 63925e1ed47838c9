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
    from distributed import Client

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

    Called from a task that already runs on a Dask worker (a Prefect flow on `DaskTaskRunner`)
    of the cluster the executor names, it uses `worker_client()`: no nested cluster, and the
    calling thread secedes so the stage's own tasks can use that worker instead of queueing
    behind it.
    """
    from distributed import Client, LocalCluster, worker_client

    check(executor)
    if executor.kind == "local":
        raise ConfigError("executor.kind=local runs in-process; there is no Dask client to open")
    if _running_on_a_worker_of(executor):
        with worker_client() as client:
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
        yield client


def _running_on_a_worker_of(executor: ExecutorParams) -> bool:
    """On a worker of the named scheduler, or (local_cluster) of any cluster: a worker process
    cannot start a cluster of its own, and its own cluster is the one the flow chose."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return False
    return executor.kind == "local_cluster" or worker.scheduler.address == scheduler_address(executor)


def worker_addresses(client: Client) -> list[str]:
    """Current workers, sorted so that data placement is repeatable run to run."""
    return sorted(client.scheduler_info()["workers"])
