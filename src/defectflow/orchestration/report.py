"""The Markdown report the training flow publishes as a Prefect artifact."""

from __future__ import annotations

from typing import Any

from defectflow.redact import redact_url


def mlflow_run_link(tracking_uri: str, run_id: str, experiment_id: str | None) -> str:
    """A clickable link for an MLflow server, else how to find the run in a local store."""
    uri = redact_url(tracking_uri)
    if uri.startswith(("http://", "https://")) and experiment_id:
        return f"[{run_id}]({uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id})"
    return f"`{run_id}` in `{uri}` (open with `mlflow ui --backend-store-uri {uri}`)"


def training_report(metrics: dict[str, Any], registration: dict[str, Any], promotion: dict[str, Any] | None,
                    run_link: str) -> str:
    """Fold AUC table, gate verdict and reasons, review reduction, MLflow run/version, promotion outcome."""
    gate = metrics["gate"]
    lines = ["# defectflow training run", "", "| fold | test window | n_train | n_test | AUC |",
             "|---:|---|---:|---:|---:|"]
    for f in metrics["folds"]:
        lines.append(f"| {f['fold']} | {str(f['test_start'])[:10]} → {str(f['test_end'])[:10]} | "
                     f"{f['n_train']} | {f['n_test']} | {f['auc']:.4f} |")
    lines += [f"| **mean** | | | | **{metrics['mean_auc']:.4f}** |", "",
              f"**Gate: {'PASSED' if gate['passed'] else 'FAILED'}**", ""]
    lines += [f"- {reason}" for reason in gate["reasons"]]
    lines += ["", f"Operating threshold **{metrics['threshold']:.4f}** (target fail recall "
                  f"{metrics.get('target_fail_recall', 'n/a')}): **{metrics['review_reduction']:.1%}** of images "
                  "no longer need human review.", "", f"MLflow run: {run_link}"]
    if registration.get("version"):
        lines.append(f"Registered version: `{registration['model_uri']}` (alias `challenger`)")
    else:
        lines.append("No version registered (gate failed).")
    if promotion:
        lines += ["", f"**Promotion: {promotion['action']}** (previous champion: "
                      f"{promotion.get('previous_champion') or 'none'})"]
        lines += [f"- {reason}" for reason in promotion["reasons"]]
    return "\n".join(lines) + "\n"
