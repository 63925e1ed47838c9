"""Metrics computed from out-of-fold predictions (label 1 = fail)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class OperatingPoint:
    """Decision threshold chosen to catch at least `target_recall` of fails."""

    threshold: float
    fail_recall: float
    review_reduction: float  # share of images scored below the threshold: no human review needed
    missed_fails: int
    n: int


def auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p))


def operating_point(y: np.ndarray, p: np.ndarray, target_recall: float) -> OperatingPoint:
    """The highest threshold whose fail recall (p ≥ threshold flagged) reaches `target_recall`.

    Higher thresholds flag fewer images, so the highest admissible one gives the largest
    review reduction without letting more defects through than the target allows.
    """
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=float)
    fails = np.sort(p[y])[::-1]
    if len(fails) == 0:
        raise ValueError("no fail examples: the operating threshold is undefined")
    # Flag the top ceil(target * n_fail) fails: the threshold is the score of the last one needed.
    needed = int(np.ceil(target_recall * len(fails) - 1e-9))
    threshold = float(fails[max(needed, 1) - 1])
    flagged = p >= threshold
    return OperatingPoint(
        threshold=threshold,
        fail_recall=float(flagged[y].mean()),
        review_reduction=float((~flagged).mean()),
        missed_fails=int((~flagged[y]).sum()),
        n=int(len(p)),
    )
