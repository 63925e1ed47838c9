"""PNG plots of the cross-validation: ROC per fold, AUC over time, recall vs review reduction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from defectflow import atomic
from defectflow.params import GateParams


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4.5))


def roc_curves(oof: pd.DataFrame, fold_aucs: dict[int, float], path: Path) -> None:
    from sklearn.metrics import roc_curve

    fig, ax = _figure()
    for fold, part in oof.groupby("fold"):
        fpr, tpr, _ = roc_curve(part["y"], part["p_fail"])
        ax.plot(fpr, tpr, label=f"fold {fold}  AUC {fold_aucs[fold]:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="false positive rate (passes flagged)", ylabel="true positive rate (fails caught)",
           title="ROC per time fold")
    ax.legend(loc="lower right")
    _save(fig, path)


def auc_over_time(folds: list[dict], gate: GateParams, path: Path) -> None:
    fig, ax = _figure()
    ends = pd.to_datetime([f["test_end"] for f in folds])
    aucs = [f["auc"] for f in folds]
    ci = np.array([f.get("auc_ci95", [a, a]) for f, a in zip(folds, aucs, strict=True)])
    yerr = np.clip([np.subtract(aucs, ci[:, 0]), np.subtract(ci[:, 1], aucs)], 0, None)
    ax.errorbar(ends, aucs, yerr=yerr, marker="o", capsize=4,
                label="fold AUC, bootstrap 95 % interval (test window end)")
    ax.axhline(gate.min_auc, color="tab:red", ls="--", label=f"gate mean ≥ {gate.min_auc}")
    ax.axhline(gate.min_fold_auc, color="tab:orange", ls=":", label=f"fold floor ≥ {gate.min_fold_auc}")
    ax.set(ylabel="AUC", title="AUC over time (expanding-window CV)",
           ylim=(min(ci.min(), gate.min_fold_auc) - 0.05, 1.0))
    ax.legend(loc="lower left")
    fig.autofmt_xdate()
    _save(fig, path)


def review_tradeoff(y: np.ndarray, p: np.ndarray, threshold: float, path: Path) -> None:
    """Fail recall against the share of images that skip human review, over all thresholds."""
    order = np.sort(np.unique(p))
    recall = [(p[y == 1] >= t).mean() for t in order]
    reduction = [(p < t).mean() for t in order]
    fig, ax = _figure()
    ax.plot(reduction, recall)
    ax.scatter([(p < threshold).mean()], [(p[y == 1] >= threshold).mean()], color="tab:red", zorder=3,
               label=f"operating threshold {threshold:.3f}")
    ax.set(xlabel="share of images no longer reviewed", ylabel="fail recall", title="Review reduction vs recall")
    ax.legend(loc="lower left")
    _save(fig, path)


def forward_recall(forward: list[dict], target: float, tolerance: float, path: Path) -> None:
    """Realized fail recall and review reduction per fold, each at the threshold chosen before it."""
    fig, ax = _figure()
    folds = [f["fold"] for f in forward]
    ax.plot(folds, [f["fail_recall"] for f in forward], marker="o", label="fail recall (threshold from earlier folds)")
    ax.plot(folds, [f["review_reduction"] for f in forward], marker="s", label="share no longer reviewed")
    ax.plot(folds, [f["ceiling_review_reduction"] for f in forward], marker="s", ls="--", color="tab:gray",
            label="share no longer reviewed at best (in-sample)")
    ax.axhline(target, color="tab:green", ls="--", label=f"target recall {target}")
    ax.axhline(target - tolerance, color="tab:red", ls=":", label=f"gate floor {target - tolerance:.2f}")
    ax.set(xlabel="fold", ylabel="share", ylim=(0, 1.02), title="Forward-validated operating point")
    ax.set_xticks(folds)
    ax.legend(loc="lower left")
    _save(fig, path)
