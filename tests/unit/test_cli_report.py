"""The fold table `defectflow pipeline` prints: each fold's forward recall beside its in-sample ceiling."""

from __future__ import annotations

import io

from rich.console import Console

from defectflow.cli.report import fold_table


def test_fold_table_shows_forward_point_and_its_ceiling():
    folds = [{"fold": k, "test_start": "2026-09-10", "test_end": "2026-09-20", "n_train": 80 * k, "n_test": 40,
              "auc": 0.9, "auc_ci95": [0.85, 0.95], "rounds_used": 60} for k in (1, 2)]
    forward = [{"fold": 2, "fail_recall": 0.62, "missed_fails": 18, "review_reduction": 0.70,
                "ceiling_review_reduction": 0.16}]
    buf = io.StringIO()
    Console(file=buf, width=160, force_terminal=False).print(fold_table({"folds": folds, "mean_auc": 0.9,
                                                                         "forward": forward}))
    row = next(line for line in buf.getvalue().splitlines() if line.startswith("│ 2 "))
    assert "0.620 (18 missed)" in row and "70.0%" in row and "16.0%" in row
    assert "at best" in buf.getvalue()
