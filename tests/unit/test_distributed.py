"""The Dask scale-out's pure parts: executor choice, shard planning, orphan clean-up and the
early-stopping replay (the clusters themselves are exercised in tests/integration/test_dask_*)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from defectflow import atomic
from defectflow.distributed.executor import is_distributed
from defectflow.distributed.featurize_dask import plan_shards
from defectflow.distributed.train_dask import early_stopping_iteration
from defectflow.errors import ConfigError
from defectflow.params import ExecutorParams, Params
from defectflow.training.booster import fit_booster


def test_params_yaml_executor_defaults_to_local():
    executor = Params.load("params.yaml").section("executor", ExecutorParams)
    assert executor.kind == "local" and not is_distributed(executor) and not is_distributed(None)


@pytest.mark.parametrize(("executor", "message"), [
    (ExecutorParams(kind="spark"), "executor.kind='spark'"),
    (ExecutorParams(kind="address"), "needs executor.address"),
    (ExecutorParams(kind="local_cluster", n_workers=0), "n_workers"),
    (ExecutorParams(kind="local_cluster", shard_size=0), "shard_size"),
])
def test_bad_executor_is_named(executor, message, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match=message):
        is_distributed(executor)


def test_scheduler_address_may_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://scheduler:8786")
    assert is_distributed(ExecutorParams(kind="address"))


def test_shards_depend_on_content_not_on_row_order():
    shas = [f"{i:064x}" for i in (5, 3, 9, 1, 7)]
    paths = [f"img{i}.png" for i in range(5)]
    shards = plan_shards(shas, paths, 2)
    assert [len(s) for s, _ in shards] == [2, 2, 1]
    assert [s for shard, _ in shards for s in shard] == sorted(shas)
    path_of = dict(zip(shas, paths, strict=True))
    assert all(path_of[s] == p for shard, ps in shards for s, p in zip(shard, ps, strict=True))
    assert plan_shards(shas[::-1], paths[::-1], 2) == shards


def test_orphan_temp_files_of_killed_writers_are_removed_and_nothing_else(tmp_path):
    from defectflow.features.backbones import backbone_spec
    from defectflow.features.store import FeatureStore

    store = FeatureStore(tmp_path, backbone_spec("mobilenet_v2", "none", 64, 0))
    tmp_path = store.dir
    vector = tmp_path / "ab" / "ab12.npy"
    atomic.write_bytes(vector, b"finished")
    orphan_writer = atomic.atomic_path(tmp_path / "cd" / "cd34.npy")  # a writer that never got to rename
    orphan = orphan_writer.__enter__()
    old = time.time() - 60
    os.utime(orphan, (old, old))
    live_writer = atomic.atomic_path(tmp_path / "ef" / "ef56.npy")
    live = live_writer.__enter__()

    assert store.remove_orphans() == 1
    assert not orphan.exists() and live.exists() and vector.read_bytes() == b"finished"
    live_writer.__exit__(None, None, None)
    assert (tmp_path / "ef" / "ef56.npy").exists()


def test_young_temp_file_of_a_stored_vector_is_swept_and_its_writer_still_succeeds(tmp_path, monkeypatch):
    """A killed Dask worker's temp file is superseded by its retried shard within the same run:
    it is removed however young, and a live writer of that same key finds the vector stored."""
    from defectflow.features.backbones import backbone_spec
    from defectflow.features.store import FeatureStore

    store = FeatureStore(tmp_path, backbone_spec("mobilenet_v2", "none", 64, 0))
    sha = "ab" + "0" * 62
    vector = np.arange(store.spec.dim, dtype=np.float32)
    superseded = atomic.atomic_path(store.path(sha))
    young = superseded.__enter__()
    store.put(sha, vector)
    another_live = atomic.atomic_path(store.path("cd" + "0" * 62))
    unrelated = another_live.__enter__()

    assert store.remove_orphans() == 1
    assert not young.exists() and unrelated.exists()
    np.testing.assert_array_equal(np.load(store.path(sha)), vector)

    class SweptWhileWriting:  # a writer whose temp file is deleted between its write and its rename
        def __init__(self, inner, sweep):
            self.inner, self.sweep = inner, sweep

        def __enter__(self):
            fh = self.inner.__enter__()
            self.sweep()
            return fh

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    real_open = atomic.atomic_open
    monkeypatch.setattr(atomic, "atomic_open", lambda target, mode="w", **kw: SweptWhileWriting(
        real_open(target, mode, **kw), store.remove_orphans))
    store.put(sha, vector)  # does not raise: the stored vector is the same one
    monkeypatch.setattr(atomic, "atomic_open", lambda target, mode="w", **kw: SweptWhileWriting(
        real_open(target, mode, **kw), lambda: [t.unlink() for t in store.dir.glob("ef/.*.tmp")]))
    with pytest.raises(FileNotFoundError):
        store.put("ef" + "0" * 62, vector)  # a lost temp file of a vector that is not stored is an error
    monkeypatch.undo()
    another_live.__exit__(None, None, None)


def test_early_stopping_replay_keeps_the_round_lightgbm_keeps():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 12)).astype(np.float32)
    y = (X[:, 0] + 0.8 * rng.normal(size=400) > 0).astype(np.int8)
    lgbm = {"n_estimators": 300, "learning_rate": 0.2, "num_leaves": 15, "min_child_samples": 5, "n_jobs": 1}
    fit, val = slice(0, 300), slice(300, 400)
    stopped = fit_booster(X[fit], y[fit], lgbm, 7, X_val=X[val], y_val=y[val], early_stopping_rounds=20)
    grown = fit_booster(X[fit], y[fit], lgbm, 7)
    assert stopped.best_iteration < grown.current_iteration()  # it really stopped early
    assert early_stopping_iteration(grown, X[val], y[val], 20) == stopped.best_iteration
