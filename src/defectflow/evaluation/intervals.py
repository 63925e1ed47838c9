"""Bootstrap confidence intervals for AUC: how much a fold's AUC could move on another sample
of the same size (a 0.85 from 40 fails and one from 400 are different evidence)."""

from __future__ import annotations

import numpy as np

from defectflow.evaluation.metrics import auc


def bootstrap_auc_ci(y: np.ndarray, p: np.ndarray, rounds: int = 1000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of AUC over stratified bootstrap resamples (fails and passes are
    resampled separately, so every replicate keeps both classes and its class balance)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    fails, passes = p[y], p[~y]
    if len(fails) == 0 or len(passes) == 0:
        raise ValueError("AUC needs both classes")
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(len(fails)), np.zeros(len(passes))]
    stats = np.empty(rounds)
    for i in range(rounds):
        sample = np.r_[rng.choice(fails, len(fails)), rng.choice(passes, len(passes))]
        stats[i] = auc(labels, sample)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return float(lo), float(hi)
