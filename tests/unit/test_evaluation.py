"""Operating threshold, review reduction and the gate."""

from __future__ import annotations

import numpy as np
import pytest

from defectflow.evaluation.gate import judge
from defectflow.evaluation.metrics import operating_point
from defectflow.params import GateParams

Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.3, 0.1, 0.05, 0.04, 0.01])


def test_operating_point_meets_recall_with_the_highest_threshold():
    op = operating_point(Y, P, target_recall=0.75)
    assert op.threshold == 0.7  # three of four fails caught
    assert (op.fail_recall, op.missed_fails) == (0.75, 1)
    assert op.review_reduction == pytest.approx(0.7)  # only 0.9, 0.8, 0.7 go to a person


def test_full_recall_flags_down_to_the_weakest_fail():
    op = operating_point(Y, P, target_recall=1.0)
    assert op.threshold == 0.2 and op.fail_recall == 1.0 and op.missed_fails == 0
    assert op.review_reduction == pytest.approx(0.4)  # 0.6 and 0.3 passes are still flagged


def test_operating_point_needs_fails():
    with pytest.raises(ValueError, match="no fail"):
        operating_point(np.zeros(5), np.linspace(0, 1, 5), 0.9)


def test_gate_passes_and_explains():
    verdict = judge([0.95, 0.93, 0.97], GateParams(min_auc=0.9, min_fold_auc=0.85))
    assert verdict.passed
    assert len(verdict.reasons) == 2 and "mean AUC 0.9500" in verdict.reasons[0]


@pytest.mark.parametrize("aucs, needle", [([0.88, 0.89, 0.9], "< 0.9"), ([0.99, 0.99, 0.8], "fold 3: 0.8000")])
def test_gate_fails_with_the_reason(aucs, needle):
    verdict = judge(aucs, GateParams(min_auc=0.9, min_fold_auc=0.85))
    assert not verdict.passed
    assert any(needle in r for r in verdict.reasons)


def _oof(folds: dict[int, tuple[list[int], list[float]]], cameras: list[str] | None = None):
    import pandas as pd

    rows = [(k, yy, pp) for k, (ys, ps) in folds.items() for yy, pp in zip(ys, ps, strict=True)]
    frame = pd.DataFrame(rows, columns=["fold", "y", "p_fail"])
    frame["camera_id"] = cameras if cameras is not None else "c1"
    return frame


def test_conformal_threshold_flags_one_more_fail_than_the_empirical_one():
    from defectflow.evaluation.metrics import recall_threshold

    y = np.r_[np.ones(10), np.zeros(5)]
    p = np.r_[np.linspace(0.95, 0.5, 10), np.linspace(0.4, 0.0, 5)]
    assert recall_threshold(y, p, 0.8) == pytest.approx(p[7])  # ceil(0.8 · 10) = 8 fails flagged
    assert recall_threshold(y, p, 0.8, "conformal") == pytest.approx(p[8])  # ceil(0.8 · 11) = 9
    assert recall_threshold(y, p, 0.95, "conformal") == 0.0  # ceil(0.95 · 11) = 11 > 10 fails: flag all


def test_forward_threshold_comes_from_earlier_folds_only():
    from defectflow.evaluation.forward import forward_points

    oof = _oof({1: ([1, 1, 1, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.2, 0.1]),
                2: ([1, 1, 1, 1, 0, 0], [0.9, 0.65, 0.5, 0.4, 0.3, 0.1]),
                3: ([1, 0], [0.99, 0.0])})
    fwd = forward_points(oof, target_recall=0.75)
    assert [f["fold"] for f in fwd] == [2, 3]
    # Fold 2: from fold 1 alone, 3 of 4 fails → threshold 0.7; on fold 2 only 0.9 reaches it.
    assert fwd[0]["threshold"] == 0.7 and fwd[0]["fail_recall"] == 0.25 and fwd[0]["missed_fails"] == 3
    assert fwd[0]["review_reduction"] == pytest.approx(5 / 6)
    # Its ceiling: fold 2's own 3-of-4 threshold (0.5) would have left half its images unreviewed, so
    # the 5/6 it realized came from missed fails.
    assert fwd[0]["ceiling_review_reduction"] == pytest.approx(1 / 2)
    assert fwd[1]["ceiling_review_reduction"] == pytest.approx(1 / 2)
    # Fold 3: folds 1 and 2 pooled (8 fails, 6 needed) → threshold 0.6. Changing fold 3 cannot move it.
    assert fwd[1]["threshold"] == 0.6
    oof.loc[oof["fold"] == 3, "p_fail"] = [0.1, 0.05]
    assert forward_points(oof, 0.75)[1]["threshold"] == 0.6


def test_gate_requires_forward_recall_on_every_fold():
    gate = GateParams(min_auc=0.9, min_fold_auc=0.85, recall_tolerance=0.02)
    ok = [{"fold": 2, "fail_recall": 0.94}, {"fold": 3, "fail_recall": 0.97}]
    verdict = judge([0.95, 0.95, 0.95], gate, ok, target_recall=0.95)
    assert verdict.passed and "lowest 0.940" in verdict.reasons[-1]
    short = [{"fold": 2, "fail_recall": 0.99}, {"fold": 3, "fail_recall": 0.53}]
    verdict = judge([0.95, 0.95, 0.95], gate, short, target_recall=0.95)
    assert not verdict.passed and "fold 3: 0.530" in verdict.reasons[-1]
    assert not judge([0.95, 0.95], gate, [], target_recall=0.95).passed  # nothing validated: no pass


def test_bootstrap_interval_brackets_the_auc_and_narrows_with_more_data():
    from defectflow.evaluation.intervals import bootstrap_auc_ci
    from defectflow.evaluation.metrics import auc

    rng = np.random.default_rng(0)
    widths = []
    for n in (60, 600):
        y = rng.integers(0, 2, n)
        p = rng.normal(size=n) + y
        lo, hi = bootstrap_auc_ci(y, p, rounds=300, seed=1)
        assert lo < auc(y, p) < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_per_camera_auc_shows_a_camera_scored_below_chance():
    from defectflow.evaluation.cameras import per_camera_auc

    oof = _oof({1: ([1, 0, 1, 0], [0.9, 0.1, 0.2, 0.8]), 2: ([1, 0, 0, 0], [0.9, 0.1, 0.3, 0.25])},
               cameras=["mono", "mono", "poly", "poly", "mono", "mono", "poly", "poly"])
    cams = {c["camera_id"]: c for c in per_camera_auc(oof)}
    assert cams["mono"]["auc"] == 1.0 and cams["poly"]["auc"] == 0.0
    assert cams["poly"]["fold_auc"] == {1: 0.0, 2: None}  # fold 2 has no poly fail: AUC undefined


def test_lower_bound_rule_flags_enough_fails_for_the_confidence_asked():
    """With n exchangeable fails, the k-th highest score as threshold has recall ~ Beta(k, n+1-k):
    the rule takes the smallest k with P(recall ≥ target) ≥ confidence, which a simulation confirms."""
    from scipy.stats import beta

    from defectflow.evaluation.metrics import recall_threshold

    rng = np.random.default_rng(0)
    n, target, confidence = 200, 0.9, 0.95
    y = np.ones(n, dtype=int)
    p = rng.random(n)
    threshold = recall_threshold(y, p, target, "lower_bound", confidence)
    k = int((p >= threshold).sum())
    assert beta.sf(target, k, n + 1 - k) >= confidence > beta.sf(target, k - 1, n + 2 - k)
    assert k > np.ceil(target * n)  # stricter than the empirical quantile
    # Simulated: fresh fails from the same distribution are caught at ≥ target in ≥ ~95 % of draws.
    held = [(rng.random(n) >= np.sort(rng.random(n))[::-1][k - 1]).mean() >= target for _ in range(400)]
    assert np.mean(held) > 0.9
    assert recall_threshold(np.ones(5), np.linspace(0, 1, 5), 0.95, "lower_bound") == 0.0  # too few: flag all


def test_forward_ceiling_bounds_every_threshold_that_reaches_the_target():
    """The ceiling is the highest threshold reaching the target on the fold itself: a forward threshold
    that reached the target cannot leave more images unreviewed, one that missed it leaves at least as many."""
    from defectflow.evaluation.forward import forward_points

    rng = np.random.default_rng(0)
    parts = {}
    for fold in range(1, 9):
        y = rng.integers(0, 2, 80)
        parts[fold] = (y.tolist(), (0.4 * y + rng.normal(0.3 + 0.05 * rng.normal(), 0.25, 80)).tolist())
    points = forward_points(_oof(parts), target_recall=0.9)
    assert {f["fail_recall"] >= 0.9 for f in points} == {True, False}  # both sides are exercised
    for f in points:
        if f["fail_recall"] >= 0.9:
            assert f["review_reduction"] <= f["ceiling_review_reduction"] + 1e-9
        else:
            assert f["review_reduction"] >= f["ceiling_review_reduction"] - 1e-9
