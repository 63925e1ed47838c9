"""The novelty rule: an image the classifier would pass, but whose anomaly score is above a high
quantile of the training window's pass images, goes to review with reason `novel`.

Defect types nobody labelled yet look unlike every good image even when the classifier has
never learned them: this rule is what keeps them from being waved through. `novelty_report`
says, on the future folds of time-split CV, how many fails each rule catches and how much
extra review the rule costs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # `decide` runs in the serving container, which has no pandas
    import pandas as pd

REASONS = ("classifier", "novel", "normal")


def decide(p_fail: np.ndarray, threshold: float, anomaly_score: np.ndarray | None,
           novelty_threshold: float | None) -> tuple[list[str], list[str]]:
    """(decision, reason) per image: fail/classifier, fail/novel or pass/normal. Without an anomaly
    score (a model without the head) it is the classifier's decision, with reason classifier or normal."""
    return decide_flagged(np.asarray(p_fail) >= threshold, anomaly_score, novelty_threshold)


def decide_flagged(flagged: np.ndarray, anomaly_score: np.ndarray | None,
                   novelty_threshold: float | None) -> tuple[list[str], list[str]]:
    """`decide` from the classifier's own flags: an edge graph outputs is_fail beside the probability,
    and its decision must stay exactly the graph's when the novelty rule does not speak."""
    flagged = np.asarray(flagged, dtype=bool)
    novel = (np.zeros_like(flagged) if anomaly_score is None or novelty_threshold is None
             else np.asarray(anomaly_score) > novelty_threshold)
    reasons = np.where(flagged, "classifier", np.where(novel, "novel", "normal"))
    return ["fail" if r != "normal" else "pass" for r in reasons], reasons.tolist()


def _counts(frame: pd.DataFrame, threshold: float) -> dict:
    fail = frame["y"].to_numpy() == 1
    flagged = frame["p_fail"].to_numpy() >= threshold
    novel = frame["novel"].to_numpy(bool)
    n = max(len(frame), 1)
    return {
        "n": int(len(frame)), "n_fail": int(fail.sum()),
        "fails_caught_classifier": int((fail & flagged).sum()),
        "fails_caught_novelty": int((fail & novel).sum()),
        "fails_caught_only_by_novelty": int((fail & novel & ~flagged).sum()),
        "fails_missed": int((fail & ~flagged & ~novel).sum()),
        "review_share_classifier": round(float(flagged.sum() / n), 6),
        "review_share_with_novelty": round(float((flagged | novel).sum() / n), 6),
        "review_share_cost": round(float((novel & ~flagged).sum() / n), 6),
    }


def novelty_report(oof: pd.DataFrame, threshold: float) -> dict | None:
    """Fails caught by the classifier (p ≥ threshold) and by the novelty rule, overall and per
    future fold, and the share of images the rule adds to review; None without the anomaly head."""
    if "novel" not in oof.columns:
        return None
    return {
        "quantile_thresholds": {int(f): round(float(t), 6)
                                for f, t in oof.groupby("fold")["novelty_threshold"].first().items()},
        "overall": _counts(oof, threshold),
        "folds": [{"fold": int(f), **_counts(part, threshold)} for f, part in oof.groupby("fold")],
    }
