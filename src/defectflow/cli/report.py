"""Human-readable summaries of a training run: the fold table, the gate, where to look next."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from defectflow.redact import redact_url


def fold_table(metrics: dict) -> Table:
    table = Table(title="Time-split cross-validation", show_footer=True)
    table.add_column("fold", footer="mean")
    table.add_column("test window")
    table.add_column("n_train", justify="right")
    table.add_column("n_test", justify="right")
    table.add_column("AUC", justify="right", footer=f"{metrics['mean_auc']:.4f}")
    table.add_column("95 % CI", justify="right")
    table.add_column("rounds", justify="right")
    table.add_column("fwd recall", justify="right")
    table.add_column("no review", justify="right")
    table.add_column("at best", justify="right")  # in-sample: the most this fold allows at the target recall
    forward = {f["fold"]: f for f in metrics.get("forward", [])}
    for f in metrics["folds"]:
        window = f"{str(f['test_start'])[:10]} → {str(f['test_end'])[:10]}"
        ci = f.get("auc_ci95")
        fwd = forward.get(f["fold"])
        table.add_row(str(f["fold"]), window, str(f["n_train"]), str(f["n_test"]), f"{f['auc']:.4f}",
                      f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "–", str(f.get("rounds_used") or "–"),
                      f"{fwd['fail_recall']:.3f} ({fwd['missed_fails']} missed)" if fwd else "–",
                      f"{fwd['review_reduction']:.1%}" if fwd else "–",
                      f"{fwd['ceiling_review_reduction']:.1%}" if fwd else "–")
    return table


def render_run(summary: dict) -> str:
    """The text `defectflow pipeline` prints at the end of a run."""
    buf = io.StringIO()
    console = Console(file=buf, width=130, force_terminal=False)
    metrics = summary["evaluate"]
    console.print(fold_table(metrics))
    gate = metrics["gate"]
    console.print(f"gate: {'PASSED' if gate['passed'] else 'FAILED'}")
    for reason in gate["reasons"]:
        console.print(f"  - {reason}")
    console.print(
        f"operating threshold {metrics['threshold']:.4f} for fail recall ≥ {metrics['target_fail_recall']}: "
        f"recall {metrics['fail_recall']:.3f}, {metrics['review_reduction']:.1%} of images no longer need review"
    )
    feat = summary.get("featurize", {})
    if feat.get("images_per_s"):
        console.print(f"featurized {feat['n_computed']} images at {feat['images_per_s']} img/s on {feat['device']} "
                      f"({feat['n_cached']} from cache)")
    reg = summary.get("register", {})
    if reg.get("version"):
        console.print(f"registered {reg['model_name']} version {reg['version']} (alias challenger), "
                      f"run {reg['run_id']}")
    workdir = summary["workdir"]
    console.print(f"plots: {workdir}/plots/*.png   metrics: {workdir}/metrics/cv.json   "
                  f"validation: {workdir}/reports/")
    if reg.get("tracking_uri"):
        console.print(f"MLflow UI: mlflow ui --backend-store-uri {redact_url(reg['tracking_uri'])} --port 5050")
    return buf.getvalue().rstrip()
