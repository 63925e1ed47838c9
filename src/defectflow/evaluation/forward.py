"""The forward-validated operating point: for each fold, choose the threshold from what was
known before it, then measure what that threshold really does on the fold.

Choosing the threshold on all out-of-fold predictions and reporting the recall on those same
predictions is in-sample: it always meets the target. In production the threshold is fixed
before the next images arrive, so fold k's threshold here comes only from folds 1..k-1 (the
predictions the models trained before fold k made on data they had not seen), and fold k's
realized fail recall, review reduction and missed fails are what the plant would have got.
The shipped threshold is the same rule applied to every fold's predictions.

Each record also carries the fold's in-sample ceiling: the review reduction fold k would allow at
the target recall had its own scores been known in advance. A realized review reduction far above
it can only come from missed fails; a ceiling near zero says the model, not the rule, is what
keeps a person reviewing every image.
"""

from __future__ import annotations

import pandas as pd

from defectflow.evaluation.metrics import measure_at, operating_point, recall_threshold


def rule_target(target_recall: float, margin: float) -> float:
    """The recall the threshold rule aims at: the target plus a safety margin, at most 1."""
    return min(1.0, target_recall + margin)


def forward_points(oof: pd.DataFrame, target_recall: float, method: str = "empirical",
                   margin: float = 0.0, confidence: float = 0.95) -> list[dict]:
    """One record per fold that has earlier folds with fails: the threshold from those folds'
    predictions and what it realizes on this fold (fold, threshold, fail_recall,
    review_reduction, missed_fails, n_fail, n), and `ceiling_review_reduction`: the review
    reduction at the fold's own empirical threshold for `target_recall` (in-sample, not a rule)."""
    aim = rule_target(target_recall, margin)
    records = []
    folds = sorted(oof["fold"].unique())
    for fold in folds[1:]:
        past, now = oof[oof["fold"] < fold], oof[oof["fold"] == fold]
        if not past["y"].any() or not now["y"].any():
            continue  # no fail to calibrate on, or none to measure recall on
        threshold = recall_threshold(past["y"].to_numpy(), past["p_fail"].to_numpy(), aim, method, confidence)
        y, p = now["y"].to_numpy(), now["p_fail"].to_numpy()
        op = measure_at(y, p, threshold)
        ceiling = operating_point(y, p, target_recall, "empirical").review_reduction
        records.append({"fold": int(fold), "threshold": op.threshold, "fail_recall": round(op.fail_recall, 6),
                        "review_reduction": round(op.review_reduction, 6), "missed_fails": op.missed_fails,
                        "n_fail": int(y.sum()), "n": op.n,
                        "ceiling_review_reduction": round(ceiling, 6)})
    return records
