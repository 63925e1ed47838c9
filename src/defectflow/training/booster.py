"""Fit a LightGBM binary classifier (label 1 = fail) with optional early stopping."""

from __future__ import annotations

from typing import Any, Protocol

import lightgbm as lgb
import numpy as np


class BoosterFitter(Protocol):
    """Grows one booster: `fit_booster` in this process, or a scale-out twin (distributed.train_dask)
    with the same arguments and the same kind of result."""

    def __call__(self, X: np.ndarray, y: np.ndarray, lgbm: dict[str, Any], seed: int, *,
                 X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
                 early_stopping_rounds: int = 0, num_boost_round: int | None = None) -> lgb.Booster: ...


def lgbm_params(lgbm: dict[str, Any], seed: int) -> tuple[dict[str, Any], int]:
    """Split `train.lgbm` into LightGBM params and the number of boosting rounds (`n_estimators`, which
    params_check requires), adding seeds and the switches that make training bit-for-bit repeatable."""
    params = dict(lgbm)
    rounds = int(params.pop("n_estimators"))
    params.setdefault("objective", "binary")
    params.update(seed=seed, deterministic=True, force_row_wise=True, verbosity=-1, metric="binary_logloss")
    return params, rounds


def fit_booster(
    X: np.ndarray,
    y: np.ndarray,
    lgbm: dict[str, Any],
    seed: int,
    *,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    early_stopping_rounds: int = 0,
    num_boost_round: int | None = None,
) -> lgb.Booster:
    """Train on (X, y); with a validation set, stop when its log-loss stops improving."""
    params, rounds = lgbm_params(lgbm, seed)
    dtrain = lgb.Dataset(X, label=y, free_raw_data=True)
    callbacks, valid_sets = [], []
    if X_val is not None and y_val is not None and early_stopping_rounds > 0:
        valid_sets = [lgb.Dataset(X_val, label=y_val, reference=dtrain)]
        callbacks.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
    return lgb.train(params, dtrain, num_boost_round=num_boost_round or rounds,
                     valid_sets=valid_sets, callbacks=callbacks)


def best_rounds(booster: lgb.Booster) -> int:
    """Rounds actually useful: the early-stopping optimum, else all trained rounds."""
    return int(booster.best_iteration or booster.current_iteration())
