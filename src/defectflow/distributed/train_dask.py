"""LightGBM's distributed learning on Dask workers, with the interface of `fit_booster`.

The pipeline asks `booster_fitter(executor)` for the train stage's fitting function, so the time-split
folds, the inner early-stopping split, the final model and the gate are the very same code on
both paths; only where the trees are grown changes. Rows are cut into one contiguous block per
worker and LightGBM's data-parallel tree learner grows each tree across the workers, which talk
to each other over LightGBM's own sockets (the mechanism `lightgbm.dask` uses).

Why not `lightgbm.dask.DaskLGBMClassifier` itself: it orders the workers (LightGBM's machine
ranks) by iterating a set of random task keys, and in data-parallel mode each rank computes the
histogram bins of its share of the features from its own rows, so the same data gave one of two
different models from run to run (measured). Here rank k is always the k-th worker address in
sorted order holding the k-th block of rows: the same cluster shape gives the same model.

Early stopping is replayed on the driver: the model is grown to the full number of rounds and
the round `lightgbm.early_stopping` would have kept is found from the validation curve (each
worker judging only its own slice of the validation set could stop at a different round and
hang the others). That costs extra rounds, never a different answer.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import lightgbm as lgb
import numpy as np

from defectflow.distributed.executor import dask_client, is_distributed, worker_addresses
from defectflow.params import ExecutorParams
from defectflow.training.booster import BoosterFitter, fit_booster, lgbm_params

if TYPE_CHECKING:
    from distributed import Client

# Fewer rows than this per worker and the network round trips cost more than the split saves.
MIN_ROWS_PER_WORKER = 32
_THREAD_PARAMS = ("n_jobs", "num_threads", "nthread", "nthreads", "num_thread")


@contextlib.contextmanager
def booster_fitter(executor: ExecutorParams | None) -> Iterator[BoosterFitter]:
    """The train stage's `BoosterFitter` for `executor`: `fit_booster` for the local executor; for a
    distributed one, a fitter bound to a Dask client that stays open for every fit of the stage
    (folds and final model)."""
    if not is_distributed(executor):
        yield fit_booster
        return
    with dask_client(executor) as client:
        yield DaskBoosterFitter(client)


class DaskBoosterFitter:
    """`training.booster.BoosterFitter` across the Dask workers: the arguments of `fit_booster`, a
    `lgb.Booster` back."""

    def __init__(self, client: Client):
        self.client = client

    def __call__(self, X: np.ndarray, y: np.ndarray, lgbm: dict[str, Any], seed: int, *,
                 X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
                 early_stopping_rounds: int = 0, num_boost_round: int | None = None) -> lgb.Booster:
        params, rounds = lgbm_params(lgbm, seed)
        for name in _THREAD_PARAMS:  # each worker uses its own thread count
            params.pop(name, None)
        workers = worker_addresses(self.client)
        workers = workers[: max(1, min(len(workers), len(y) // MIN_ROWS_PER_WORKER))]
        ports = self.client.run(_free_port, workers=workers)
        network = {"tree_learner": "data", "pre_partition": True, "num_machines": len(workers),
                   "machines": ",".join(f"{urlparse(w).hostname}:{ports[w]}" for w in workers)}
        futures = []
        for rank, (worker, rows) in enumerate(zip(workers, np.array_split(np.arange(len(y)), len(workers)),
                                                  strict=True)):
            # hash=False: a refit scatters the same arrays again; content-hashed keys would then name
            # futures the scheduler is still releasing from the first fit ("lost dependencies").
            block = self.client.scatter([X[rows], y[rows]], workers=[worker], hash=False)
            futures.append(self.client.submit(
                _train_block, *block, {**params, **network, "local_listen_port": ports[worker]},
                num_boost_round or rounds, rank == 0, workers=[worker], allow_other_workers=False, pure=False))
        booster = lgb.Booster(model_str=self.client.gather(futures)[0])
        if X_val is not None and y_val is not None and early_stopping_rounds > 0:
            booster.best_iteration = early_stopping_iteration(booster, X_val, y_val, early_stopping_rounds)
        return booster


def _train_block(X: np.ndarray, y: np.ndarray, params: dict[str, Any], rounds: int, return_model: bool) -> str | None:
    """Runs on a worker: its share of one distributed LightGBM training; rank 0 returns the model."""
    from distributed import get_worker

    booster = lgb.train({**params, "num_threads": get_worker().state.nthreads}, lgb.Dataset(X, label=y),
                        num_boost_round=rounds)
    try:
        return booster.model_to_string() if return_model else None
    finally:
        if params["num_machines"] > 1:
            booster.free_network()


def _free_port() -> int:
    """A TCP port free on this worker's host for LightGBM's sockets."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def early_stopping_iteration(booster: lgb.Booster, X_val: np.ndarray, y_val: np.ndarray, patience: int) -> int:
    """The round `lgb.early_stopping(patience)` keeps, replayed from the grown model: the best
    validation log-loss so far, stopping once `patience` rounds pass without improving on it."""
    raw = np.zeros(len(y_val), dtype=np.float64)
    best_loss, best_round = np.inf, 0
    for it in range(booster.current_iteration()):
        raw += booster.predict(X_val, start_iteration=it, num_iteration=1, raw_score=True)
        loss = binary_logloss(y_val, raw)
        if loss < best_loss:
            best_loss, best_round = loss, it
        elif it - best_round >= patience:
            break
    return best_round + 1


def binary_logloss(y: np.ndarray, raw_score: np.ndarray) -> float:
    """LightGBM's `binary_logloss` from raw scores, computed without overflow."""
    return float(np.mean(np.where(y == 1, np.logaddexp(0.0, -raw_score), np.logaddexp(0.0, raw_score))))
