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


THRESHOLD_METHODS = ("empirical", "conformal", "lower_bound")


def recall_threshold(y: np.ndarray, p: np.ndarray, target_recall: float, method: str = "empirical",
                     confidence: float = 0.95) -> float:
    """The highest threshold whose fail recall (p ≥ threshold flagged) reaches `target_recall` on (y, p).

    `empirical` flags the top ceil(target · n_fail) fails of these predictions. `conformal` flags
    the top ceil(target · (n_fail + 1)): for a new fail exchangeable with these, P(flagged) ≥ target
    on average over calibration sets (a finite-sample bound; with too few fails to reach it,
    everything is flagged). `lower_bound` flags the top k fails for the smallest k whose recall is
    at least the target with probability `confidence` over the calibration set: with the k-th
    highest of n fail scores as threshold, the true recall is Beta(k, n + 1 − k) distributed for
    exchangeable fails (order statistics), so the rule holds on future images, not only on average.
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"threshold method {method!r} is not one of {', '.join(THRESHOLD_METHODS)}")
    y = np.asarray(y).astype(bool)
    fails = np.sort(np.asarray(p, dtype=float)[y])[::-1]
    if len(fails) == 0:
        raise ValueError("no fail examples: the operating threshold is undefined")
    if method == "lower_bound":
        needed = _fails_for_recall_bound(len(fails), target_recall, confidence)
    else:
        n = len(fails) + (method == "conformal")
        needed = int(np.ceil(target_recall * n - 1e-9))
    if needed > len(fails):
        return 0.0
    return float(fails[max(needed, 1) - 1])


def _fails_for_recall_bound(n_fail: int, target_recall: float, confidence: float) -> int:
    """The smallest k with P(Beta(k, n + 1 − k) ≥ target) ≥ confidence; n + 1 when no k reaches it."""
    from scipy.stats import beta

    k = np.arange(1, n_fail + 1)
    ok = np.flatnonzero(beta.sf(target_recall, k, n_fail + 1 - k) >= confidence)
    return int(k[ok[0]]) if len(ok) else n_fail + 1


def measure_at(y: np.ndarray, p: np.ndarray, threshold: float) -> OperatingPoint:
    """Fail recall, review reduction and missed fails when p ≥ threshold is flagged for review."""
    y = np.asarray(y).astype(bool)
    flagged = np.asarray(p, dtype=float) >= threshold
    return OperatingPoint(
        threshold=float(threshold),
        fail_recall=float(flagged[y].mean()) if y.any() else float("nan"),
        review_reduction=float((~flagged).mean()),
        missed_fails=int((~flagged[y]).sum()),
        n=int(len(flagged)),
    )


def operating_point(y: np.ndarray, p: np.ndarray, target_recall: float, method: str = "empirical",
                    confidence: float = 0.95) -> OperatingPoint:
    """The operating point at `recall_threshold` (see there), measured on the same predictions.

    Higher thresholds flag fewer images, so the highest admissible one gives the largest
    review reduction without letting more defects through than the target allows.
    """
    return measure_at(y, p, recall_threshold(y, p, target_recall, method, confidence))
