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
