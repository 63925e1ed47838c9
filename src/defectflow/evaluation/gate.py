"""The promotion gate: a model may be promoted only if its time-split AUC is high enough."""

from __future__ import annotations

from dataclasses import dataclass

from defectflow.params import GateParams


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reasons: list[str]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reasons": self.reasons}


def judge(fold_aucs: list[float], gate: GateParams, forward: list[dict] | None = None,
          target_recall: float | None = None) -> GateVerdict:
    """Pass when mean AUC ≥ gate.min_auc, no fold is below gate.min_fold_auc and, given the
    forward operating points, every fold's realized fail recall ≥ target − gate.recall_tolerance.

    Every check contributes a reason, passed or not, so the verdict explains itself.
    """
    mean_auc = sum(fold_aucs) / len(fold_aucs)
    reasons, passed = [], True
    if mean_auc >= gate.min_auc:
        reasons.append(f"mean AUC {mean_auc:.4f} ≥ {gate.min_auc}")
    else:
        passed = False
        reasons.append(f"mean AUC {mean_auc:.4f} < {gate.min_auc} (gate.min_auc)")
    weak = [(i + 1, a) for i, a in enumerate(fold_aucs) if a < gate.min_fold_auc]
    if weak:
        passed = False
        listed = ", ".join(f"fold {i}: {a:.4f}" for i, a in weak)
        reasons.append(f"fold AUC below {gate.min_fold_auc} (gate.min_fold_auc): {listed}")
    else:
        reasons.append(f"every fold AUC ≥ {gate.min_fold_auc} (lowest {min(fold_aucs):.4f})")
    if forward is not None and target_recall is not None:
        recall_ok, reason = _forward_recall(forward, target_recall, gate.recall_tolerance)
        passed = passed and recall_ok
        reasons.append(reason)
    return GateVerdict(passed, reasons)


def _forward_recall(forward: list[dict], target: float, tolerance: float) -> tuple[bool, str]:
    floor = round(target - tolerance, 6)
    if not forward:
        return False, "no fold has earlier folds to choose a threshold from: the recall cannot be validated forward"
    short = [(f["fold"], f["fail_recall"]) for f in forward if f["fail_recall"] < floor - 1e-9]
    if short:
        listed = ", ".join(f"fold {k}: {r:.3f}" for k, r in short)
        return False, (f"forward fail recall below {floor} (target {target} − gate.recall_tolerance {tolerance}): "
                       f"{listed}")
    lowest = min(f["fail_recall"] for f in forward)
    return True, f"forward fail recall ≥ {floor} on every fold (lowest {lowest:.3f})"
