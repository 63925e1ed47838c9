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


def judge(fold_aucs: list[float], gate: GateParams) -> GateVerdict:
    """Pass when mean AUC ≥ gate.min_auc and no fold is below gate.min_fold_auc.

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
    return GateVerdict(passed, reasons)
