"""Smoke of `make quality`: a few hundred real ELPV cells through the real stages, tiny settings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration

SMOKE = ["--limit", "240", "--module-size", "20", "--seeds", "0", "--quiet",
         "--set", "featurize.image_size=32", "--set", "featurize.num_workers=0", "--set", "train.n_folds=3",
         "--set", "train.min_train=30", "--set", "train.min_test=20", "--set", "train.lgbm.n_estimators=40",
         "--set", "train.early_stopping_rounds=10", "--set", "train.min_rounds=10",
         "--set", "evaluate.bootstrap_rounds=50"]


def test_quality_benchmark_smoke(tmp_path):
    from bench.quality.__main__ import parse_args, run

    json_path, md_path = run(parse_args([*SMOKE, "--scratch", str(tmp_path / "q"), "--out", str(tmp_path / "out"),
                                         "--stem", "smoke"]))
    report = json.loads(json_path.read_text())
    assert [r["protocol"] for r in report["runs"]] == ["time", "unseen-0", "random"]
    assert report["dataset"]["n"] == 240 and 0 < report["dataset"]["n_fail"] < 240
    for r in report["runs"]:
        assert len(r["fold_auc"]) == 3 and all(0 <= a <= 1 for a in r["fold_auc"])
        for a, (lo, hi) in zip(r["fold_auc"], r["fold_auc_ci95"], strict=True):
            assert lo <= a + 1e-9 and a <= hi + 1e-9
        # Forward points are measured on the out-of-fold predictions at a threshold from earlier folds only.
        oof = pd.read_parquet(f"{r['workdir']}/cv/oof.parquet")
        for f in r["forward"]:
            past = oof[oof["fold"] < f["fold"]]
            assert f["threshold"] in set(past["p_fail"]) | {0.0}
            now = oof[oof["fold"] == f["fold"]]
            flagged = now["p_fail"] >= f["threshold"]
            assert f["fail_recall"] == pytest.approx(flagged[now["y"] == 1].mean(), abs=1e-6)
        assert {c["camera_id"] for c in r["cameras"]} <= {"mono", "poly"}
        # The stages run as the CLI runs them: the shipped anomaly head gives the novelty rule's figures.
        assert r["novelty"]["overall"]["n_fail"] == sum(f["n_fail"] for f in r["novelty"]["folds"]) > 0
    # One feature store for all protocols: only the first run computes features.
    assert report["runs"][0]["featurize"]["n_computed"] == 240
    assert [r["featurize"]["n_computed"] for r in report["runs"][1:]] == [0, 0]
    # Unseen modules: no test window shares a module with its training window, and modules are shuffled.
    labels = pd.read_csv(tmp_path / "q" / "data" / "unseen-0" / "labels.csv")
    assert not np.array_equal(labels["board_id"].to_numpy(), sorted(labels["board_id"]))
    md = md_path.read_text()
    assert "## Ablation" in md and "| **baseline**" in md and "baseline / unseen-0" in md and "Novelty rule" in md
