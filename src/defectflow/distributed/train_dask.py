"""LightGBM on a Dask cluster with the same interface as `training.booster.fit_booster`.

The train stage asks `booster_fitter(executor)` for its fitting function, so the time-split
folds, the inner early-stopping split, the final model and the gate are the very same code on
both paths; only where the trees are grown changes. Rows are cut into one contiguous block per
worker (sorted worker addresses, so placement repeats run to run) and LightGBM's data-parallel
learner builds the trees across the workers.

`lightgbm.dask` has no reliable early stopping (each worker would judge its own slice of the
validation set and could stop at a different round), so the model is grown to the full number
of rounds and the round that `lightgbm.early_stopping` would have kept is found on the driver
from the validation curve. That costs extra rounds, never a different answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np

from defectflow.distributed.executor import dask_client, is_distributed, worker_addresses
from defectflow.params import ExecutorParams
from defectflow.training.booster import fit_booster, lgbm_params

if TYPE_CHECKING:
    from distributed import Client

BoosterFitter = Callable[..., lgb.Booster]
# Fewer rows than this per worker and the network round trips cost more than the split saves.
MIN_ROWS_PER_WORKER = 32
_THREAD_PARAMS = ("n_jobs", "num_threads", "nthread", "nthreads", "num_thread")


@contextlib.contextmanager
def booster_fitter(executor: ExecutorParams | None) -> Iterator[BoosterFitter]:
    """`fit_booster` for the local executor; for a distributed one, a fitter bound to a Dask
    client that stays open for every fit of the stage (folds and final model)."""
    if not is_distributed(executor):
        yield fit_booster
        return
    with dask_client(executor) as client:
        yield DaskBoosterFitter(client)


class DaskBoosterFitter:
    """Train like `fit_booster` (same arguments, a `lgb.Booster` back) with `lightgbm.dask`."""

    def __init__(self, client: Client):
        self.client = client

    def __call__(self, X: np.ndarray, y: np.ndarray, lgbm: dict[str, Any], seed: int, *,
                 X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
                 early_stopping_rounds: int = 0, num_boost_round: int | None = None) -> lgb.Booster:
        from lightgbm.dask import DaskLGBMClassifier

        params, rounds = lgbm_params(lgbm, seed)
        for name in _THREAD_PARAMS:  # each worker uses its own thread count
            params.pop(name, None)
        X_dask, y_dask = self._spread(X, y)
        model = DaskLGBMClassifier(client=self.client, n_estimators=num_boost_round or rounds, **params)
        booster = model.fit(X_dask, y_dask).booster_
        if X_val is not None and y_val is not None and early_stopping_rounds > 0:
            booster.best_iteration = early_stopping_iteration(booster, X_val, y_val, early_stopping_rounds)
        return booster

    def _spread(self, X: np.ndarray, y: np.ndarray):
        """One contiguous block of rows per worker, placed on that worker."""
        import dask
        import dask.array as da

        workers = worker_addresses(self.client)
        n_blocks = max(1, min(len(workers), len(y) // MIN_ROWS_PER_WORKER))
        x_blocks, y_blocks = [], []
        for worker, rows in zip(workers, np.array_split(np.arange(len(y)), n_blocks), strict=False):
            x_part, y_part = self.client.scatter([X[rows], y[rows]], workers=[worker])
            x_blocks.append(da.from_delayed(dask.delayed(x_part), shape=(len(rows), X.shape[1]), dtype=X.dtype))
            y_blocks.append(da.from_delayed(dask.delayed(y_part), shape=(len(rows),), dtype=y.dtype))
        return da.concatenate(x_blocks), da.concatenate(y_blocks)


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
