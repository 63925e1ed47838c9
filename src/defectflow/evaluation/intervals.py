"""Bootstrap confidence intervals for AUC: how much a fold's AUC could move on another sample
of the same size (a 0.85 from 40 fails and one from 400 are different evidence)."""

from __future__ import annotations

import numpy as np


def bootstrap_auc_ci(y: np.ndarray, p: np.ndarray, rounds: int = 1000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of AUC over stratified bootstrap resamples (fails and passes are
    resampled separately, so every replicate keeps both classes and its class balance).

    All replicates at once: AUC is the Mann-Whitney statistic, from mid-ranks along each row.
    """
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    fails, passes = p[y], p[~y]
    if len(fails) == 0 or len(passes) == 0:
        raise ValueError("AUC needs both classes")
    rng = np.random.default_rng(seed)
    samples = np.hstack([rng.choice(fails, (rounds, len(fails))), rng.choice(passes, (rounds, len(passes)))])
    ranks = rankdata(samples, axis=1)[:, : len(fails)]
    n1, n0 = len(fails), len(passes)
    stats = (ranks.sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return float(lo), float(hi)
