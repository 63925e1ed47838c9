"""Time-based cross-validation splits: expanding windows ordered by capture time.

Fold k tests on the k-th time block and trains only on images captured before it (minus an
optional gap), never on a board that also appears in the test block. This mirrors how the
model is used: trained on the past, judged on the future.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from defectflow.errors import DefectflowError


@dataclass(frozen=True)
class Fold:
    index: int
    train_idx: np.ndarray  # positions in the labelled frame
    test_idx: np.ndarray
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def time_split_folds(
    captured_at: pd.Series,
    groups: pd.Series,
    y: np.ndarray,
    *,
    n_folds: int,
    gap_days: float = 0.0,
    min_train: int = 1,
    min_test: int = 1,
) -> list[Fold]:
    """Split rows into `n_folds` expanding-window folds over n_folds+1 equal-count time blocks."""
    if n_folds < 1:
        raise DefectflowError(f"train.n_folds must be ≥ 1, got {n_folds}")
    t = pd.to_datetime(captured_at, utc=True).reset_index(drop=True)
    groups = groups.reset_index(drop=True).astype(str)
    # Block edges at time quantiles; test blocks are [edge_k, edge_k+1), the last one closed.
    edges = t.quantile(np.linspace(0, 1, n_folds + 2)).to_numpy()
    gap = pd.Timedelta(days=gap_days)
    folds: list[Fold] = []
    for k in range(1, n_folds + 1):
        lo, hi = edges[k], edges[k + 1]
        in_test = (t >= lo) & ((t < hi) if k < n_folds else (t <= hi))
        test_groups = set(groups[in_test])
        in_train = (t < lo - gap) & ~groups.isin(test_groups)
        train_idx, test_idx = np.flatnonzero(in_train), np.flatnonzero(in_test)
        _check_fold(k, train_idx, test_idx, y, min_train, min_test, n_folds)
        folds.append(Fold(k, train_idx, test_idx, t[in_test].min(), t[in_test].max()))
    return folds


def _check_fold(k: int, train_idx: np.ndarray, test_idx: np.ndarray, y: np.ndarray,
                min_train: int, min_test: int, n_folds: int) -> None:
    advice = f"add labelled images or lower train.n_folds (now {n_folds}) / train.min_train / train.min_test"
    if len(train_idx) < min_train:
        raise DefectflowError(f"fold {k}: only {len(train_idx)} training images (train.min_train={min_train}); "
                              f"{advice}")
    if len(test_idx) < min_test:
        raise DefectflowError(f"fold {k}: only {len(test_idx)} test images (train.min_test={min_test}); {advice}")
    for name, idx in (("training", train_idx), ("test", test_idx)):
        if len(np.unique(y[idx])) < 2:
            raise DefectflowError(f"fold {k}: the {name} window holds only one class, AUC is undefined; {advice}")


def inner_validation_split(
    captured_at: pd.Series, groups: pd.Series, val_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Split a training window into fit/validation parts for early stopping.

    The validation part is the newest `val_fraction` of the window (by time), with its boards
    removed from the fit part: early stopping never sees anything outside the training window.
    """
    t = pd.to_datetime(captured_at, utc=True).reset_index(drop=True)
    groups = groups.reset_index(drop=True).astype(str)
    cut = t.quantile(1 - val_fraction)
    in_val = t >= cut
    fit = ~in_val & ~groups.isin(set(groups[in_val]))
    return np.flatnonzero(fit), np.flatnonzero(in_val)
