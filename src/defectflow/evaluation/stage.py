"""The evaluate stage: fold AUCs, operating threshold, review reduction, plots, gate verdict."""

from __future__ import annotations

import json

import pandas as pd

from defectflow import atomic
from defectflow.anomaly.novelty import novelty_report
from defectflow.errors import DefectflowError
from defectflow.evaluation import plots
from defectflow.evaluation.cameras import per_camera_auc
from defectflow.evaluation.forward import forward_points, rule_target
from defectflow.evaluation.gate import judge
from defectflow.evaluation.intervals import bootstrap_auc_ci
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
    cis = {f: bootstrap_auc_ci(part["y"].to_numpy(), part["p_fail"].to_numpy(), params.bootstrap_rounds,
                               params.bootstrap_seed + int(f)) for f, part in oof.groupby("fold")}
    folds = [
        {"fold": r["fold"], "auc": round(fold_aucs[r["fold"]], 6),
         "auc_ci95": [round(v, 6) for v in cis[r["fold"]]], "n_train": r["n_train"], "n_test": r["n_test"],
         "test_start": r["test_start"], "test_end": r["test_end"], "best_iteration": r.get("best_iteration"),
         "rounds_used": r.get("rounds_used", r.get("best_iteration"))}
        for r in fold_records
    ]
    y, p = oof["y"].to_numpy(), oof["p_fail"].to_numpy()
    # The shipped threshold: the rule the forward evaluation below validates, on every fold's predictions.
    op = operating_point(y, p, rule_target(params.target_fail_recall, params.recall_margin), params.threshold_method,
                         params.recall_confidence)
    forward = forward_points(oof, params.target_fail_recall, params.threshold_method, params.recall_margin,
                             params.recall_confidence)
    aucs = [f["auc"] for f in folds]
    verdict = judge(aucs, gate, forward, params.target_fail_recall)
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
        "threshold_method": params.threshold_method,
        "recall_margin": params.recall_margin,
        "forward": forward,
        "cameras": per_camera_auc(oof),
        "gate": verdict.to_dict(),
    }
    if (novelty := novelty_report(oof, op.threshold)) is not None:
        metrics["novelty"] = novelty
    atomic.write_json(workdir.cv_metrics, metrics)
    plots.roc_curves(oof, fold_aucs, workdir.plots / "roc.png")
    plots.auc_over_time(folds, gate, workdir.plots / "auc_over_time.png")
    plots.review_tradeoff(y, p, op.threshold, workdir.plots / "review_tradeoff.png")
    plots.forward_recall(forward, params.target_fail_recall, gate.recall_tolerance,
                         workdir.plots / "forward_recall.png")
    return metrics
