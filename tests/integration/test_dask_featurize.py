"""Featurization as shards on a real 2-process Dask cluster: same vectors as the local path (with
torch and with ONNX Runtime), and a worker killed mid-run costs nothing but a retry."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.dask_cluster import SEED, featurize_params

pytestmark = pytest.mark.integration

# Measured on this machine (CPU, MobileNetV2 ImageNet weights, 64 px): shards cut from the sorted
# sha256 list change which images share a batch, and the vectors still came out bit-for-bit equal
# to the local run (max |diff| = 0). oneDNN may pick batch-size-dependent kernels elsewhere, so
# the stated tolerance leaves room for float32 rounding of values of order 1.
FEATURE_ATOL = 1e-5


def read_features(workdir) -> pd.DataFrame:
    return pd.read_parquet(workdir.features).set_index("sha256").sort_index()


def test_distributed_featurization_equals_local(dask_featurized, dask_cluster, tmp_path):
    from defectflow.distributed.featurize_dask import vector_filler
    from defectflow.features.stage import featurize

    executor, _ = dask_cluster
    workdir = dask_featurized.copy_validated(tmp_path / "dask")
    summary = featurize(dask_featurized.data_dir, workdir, featurize_params(), SEED, progress=False,
                        remote=vector_filler(executor))

    local = read_features(type(workdir)(dask_featurized.workdir))
    remote = read_features(workdir)
    assert summary["n_computed"] == len(local) and summary["device"] == "dask 2 workers: cpu"
    assert list(remote.index) == list(local.index)
    diff = np.abs(remote.to_numpy() - local.to_numpy())
    print(f"max |dask - local| = {diff.max():.3g} over {diff.size} values; exact share {(diff == 0).mean():.4f}")
    assert diff.max() <= FEATURE_ATOL
    assert np.abs(local.to_numpy()).max() > 0.1  # real features, not an all-zero matrix that would match anything


def test_onnxruntime_on_dask_equals_local_onnxruntime(dask_featurized, dask_cluster, tmp_path):
    """`featurize.engine` reaches the workers: they run the graph the driver exported once into the
    store's graphs/ folder, and give the local ONNX Runtime path's vectors."""
    from defectflow.distributed.featurize_dask import vector_filler
    from defectflow.features.stage import featurize

    executor, _ = dask_cluster
    params = dataclasses.replace(featurize_params(), engine="onnxruntime")
    local_workdir = dask_featurized.copy_validated(tmp_path / "local-ort")
    featurize(dask_featurized.data_dir, local_workdir, params, SEED, progress=False)
    workdir = dask_featurized.copy_validated(tmp_path / "dask-ort")
    summary = featurize(dask_featurized.data_dir, workdir, params, SEED, progress=False,
                        remote=vector_filler(executor))

    assert summary["device"] == "dask 2 workers: cpu (onnxruntime)"  # the workers' extractors say what ran
    graphs = sorted(p.name for p in (workdir.feature_store / "graphs").iterdir())
    assert len(graphs) == 1 and graphs[0].endswith(".onnx"), graphs  # one graph, no temp file left by a race
    local, remote = read_features(local_workdir), read_features(workdir)
    assert list(remote.index) == list(local.index) and summary["n_computed"] == len(local)
    diff = np.abs(remote.to_numpy() - local.to_numpy())
    print(f"max |dask ort - local ort| = {diff.max():.3g}; exact share {(diff == 0).mean():.4f}")
    assert diff.max() <= FEATURE_ATOL


def test_killed_worker_is_recomputed_and_store_stays_complete(dask_featurized, dask_cluster, tmp_path):
    from defectflow.distributed.featurize_dask import vector_filler
    from defectflow.features.backbones import backbone_spec
    from defectflow.features.stage import featurize
    from defectflow.features.store import FeatureStore

    executor, cluster = dask_cluster
    params = featurize_params()
    workdir = dask_featurized.copy_validated(tmp_path / "killed")
    store = FeatureStore(workdir.feature_store, backbone_spec(params.backbone, params.weights, params.image_size, SEED))
    local = read_features(type(workdir)(dask_featurized.workdir))
    n_total = len(local)

    result: dict = {}
    run = threading.Thread(target=lambda: result.update(featurize(
        dask_featurized.data_dir, workdir, params, SEED, progress=False, remote=vector_filler(executor))))
    run.start()

    def stored() -> int:
        return sum(1 for _ in store.dir.glob("*/*.npy"))

    deadline = time.monotonic() + 120
    while stored() < executor.shard_size and time.monotonic() < deadline:  # wait until work is flowing
        time.sleep(0.05)
    pids_before = cluster_worker_pids(cluster)
    victim = sorted(pids_before)[0]
    os.kill(victim, signal.SIGKILL)
    at_kill = stored()
    run.join(timeout=300)

    assert not run.is_alive(), "featurization did not finish after a worker was killed"
    assert 0 < at_kill < n_total, f"the kill landed outside the run ({at_kill}/{n_total} vectors stored)"
    assert victim not in cluster_worker_pids(cluster)  # that process is gone; the nanny started a new one
    assert result["n_computed"] == n_total
    for sha in local.index:  # every vector is there, loads, has the right shape and values
        vector = np.load(store.path(sha), allow_pickle=False)
        assert vector.shape == (store.spec.dim,) and vector.dtype == np.float32
        np.testing.assert_allclose(vector, local.loc[sha].to_numpy(), rtol=0, atol=FEATURE_ATOL)
    assert sorted(p.name for p in store.dir.rglob("*.npy")) == sorted(f"{s}.npy" for s in local.index)
    assert not list(store.dir.rglob("*.tmp")), "temp files left in the feature store"
    assert read_features(workdir).shape == local.shape


def cluster_worker_pids(cluster) -> set[int]:
    from distributed import Client

    with Client(cluster) as client:
        return set(client.run(os.getpid, on_error="ignore").values())
