"""A Prefect flow on prefect-dask's DaskTaskRunner (params.yaml executor → dask_task_runner): its
task runs on a Dask worker, and the featurize stage inside it shards across the same cluster."""

from __future__ import annotations

import pandas as pd
import pytest
from prefect import flow, task

from tests.fixtures.dask_cluster import SEED, featurize_params

pytestmark = pytest.mark.integration


@task
def featurize_on_worker(data_dir, workdir, executor) -> dict:
    from distributed import get_worker

    from defectflow.features.stage import featurize

    summary = featurize(data_dir, workdir, featurize_params(), SEED, progress=False, executor=executor)
    return {**summary, "ran_on": get_worker().address}


@flow
def featurize_flow(data_dir, workdir, executor) -> dict:
    return featurize_on_worker(data_dir, workdir, executor)


def test_flow_on_dask_task_runner_featurizes_on_the_cluster(prefect_server, dask_featurized, dask_cluster, tmp_path):
    from defectflow.distributed.prefect_runner import dask_task_runner

    executor, _ = dask_cluster
    workdir = dask_featurized.copy_validated(tmp_path / "prefect")
    runner = dask_task_runner(executor)
    summary = featurize_flow.with_options(task_runner=runner)(dask_featurized.data_dir, workdir, executor)

    assert summary["ran_on"].startswith("tcp://127.0.0.1:")  # the task itself ran on a Dask worker
    assert summary["device"] == "dask 2 workers: cpu"  # and the stage reused that cluster
    local = pd.read_parquet(type(workdir)(dask_featurized.workdir).features)
    assert summary["n_computed"] == len(local)
    pd.testing.assert_frame_equal(pd.read_parquet(workdir.features).set_index("sha256").sort_index(),
                                  local.set_index("sha256").sort_index(), check_exact=False, atol=1e-5, rtol=0)


def test_local_executor_keeps_the_flow_runner():
    from defectflow.distributed.prefect_runner import dask_task_runner
    from defectflow.params import ExecutorParams

    assert dask_task_runner(ExecutorParams()) is None
