"""A Prefect flow on prefect-dask's DaskTaskRunner (params.yaml executor → dask_task_runner): its
task runs on a Dask worker, and the featurize stage inside it shards across the same cluster
instead of starting a nested one."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from tests.fixtures.dask_cluster import SEED, featurize_params

pytestmark = pytest.mark.integration


def featurize_on_worker(data_dir, workdir, executor) -> dict:
    import os

    from distributed.worker import Worker

    from defectflow.distributed.featurize_dask import vector_filler
    from defectflow.features.stage import featurize

    summary = featurize(data_dir, workdir, featurize_params(), SEED, progress=False, remote=vector_filler(executor))
    # Prefect runs this outside Dask's task context (get_worker() fails), hence the registry.
    return {**summary, "ran_on": [w.address for w in Worker._instances], "pid": os.getpid()}


def make_flow():
    """Built after the Prefect server fixture has set PREFECT_API_URL (Prefect reads it on import)."""
    from prefect import flow, task

    featurize_task = task(featurize_on_worker, name="featurize")

    @flow(name="dask-featurize")
    def featurize_flow(data_dir, workdir, executor) -> dict:
        return featurize_task.submit(data_dir, workdir, executor).result()  # submit: calling a task runs it inline

    return featurize_flow


def test_flow_on_dask_task_runner_featurizes_on_the_cluster(prefect_server, dask_featurized, tmp_path):
    from defectflow.orchestration.task_runner import dask_task_runner
    from defectflow.params import ExecutorParams

    executor = ExecutorParams(kind="local_cluster", n_workers=2, threads_per_worker=1, shard_size=16)
    workdir = dask_featurized.copy_validated(tmp_path / "prefect")
    flow = make_flow().with_options(task_runner=dask_task_runner(executor))
    summary = flow(dask_featurized.data_dir, workdir, executor)

    assert summary["pid"] != os.getpid() and len(summary["ran_on"]) == 1  # the task ran in a Dask worker process
    assert summary["device"] == "dask 2 workers: cpu"  # and the stage sharded over that same cluster
    local = pd.read_parquet(type(workdir)(dask_featurized.workdir).features).set_index("sha256").sort_index()
    assert summary["n_computed"] == len(local)
    remote = pd.read_parquet(workdir.features).set_index("sha256").sort_index()
    pd.testing.assert_frame_equal(remote, local, check_exact=False, atol=1e-5, rtol=0)


def test_local_executor_keeps_the_flow_runner():
    from defectflow.orchestration.task_runner import dask_task_runner
    from defectflow.params import ExecutorParams

    assert dask_task_runner(ExecutorParams()) is None
