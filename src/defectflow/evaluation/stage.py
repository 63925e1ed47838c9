"""The evaluate stage: fold AUCs, operating threshold, review reduction, plots, gate verdict."""

from __future__ import annotations

import json

import pandas as pd

from defectflow import atomic
from defectflow.anomaly.novelty import novelty_report
from defectflow.errors import DefectflowError
from defectflow.evaluation import plots
from defectflow.evaluation.gate import judge
from defectflow.evaluation.metrics import auc, operating_point
from defectflow.params import EvaluateParams, GateParams
from defectflow.workdir import Workdir


def evaluate(workdir: Workdir, params: EvaluateParams, gate: GateParams) -> dict:
    """Write metrics/cv.json and the plots; return the same dict as cv.json."""
    if not workdir.oof_predictions.exists():
        raise DefectflowError(f"{workdir.oof_predictions} not found: run `defectflow train` first")
    oof = pd.read_parquet(workdir.oof_predictions)
    fold_records = json.loads(workdir.folds.read_text())

    fold_aucs = {f: auc(part["y"].to_numpy(), part["p_fail"].to_numpy()) for f, part in oof.groupby("fold")}
    folds = [
        {"fold": r["fold"], "auc": round(fold_aucs[r["fold"]], 6), "n_train": r["n_train"], "n_test": r["n_test"],
         "test_start": r["test_start"], "test_end": r["test_end"]}
        for r in fold_records
    ]
    y, p = oof["y"].to_numpy(), oof["p_fail"].to_numpy()
    op = operating_point(y, p, params.target_fail_recall)
    aucs = [f["auc"] for f in folds]
    verdict = judge(aucs, gate)
    metrics = {
        "folds": folds,
        "mean_auc": round(sum(aucs) / len(aucs), 6),
        "min_auc": round(min(aucs), 6),
        "threshold": op.threshold,
        "review_reduction": round(op.review_reduction, 6),
        "fail_recall": round(op.fail_recall, 6),
        "target_fail_recall": params.target_fail_recall,
        "missed_fails": op.missed_fails,
        "n_oof": op.n,
        "gate": verdict.to_dict(),
    }
    if (novelty := novelty_report(oof, op.threshold)) is not None:
        metrics["novelty"] = novelty
    atomic.write_json(workdir.cv_metrics, metrics)
    plots.roc_curves(oof, fold_aucs, workdir.plots / "roc.png")
    plots.auc_over_time(folds, gate, workdir.plots / "auc_over_time.png")
    plots.review_tradeoff(y, p, op.threshold, workdir.plots / "review_tradeoff.png")
    return metrics
