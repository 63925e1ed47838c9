"""The threshold probe's rules use only what was known before each fold, and its fold models are the CV's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.quality import threshold_probe
from defectflow.evaluation.forward import forward_points
from defectflow.evaluation.metrics import recall_threshold
from defectflow.params import EvaluateParams, TrainParams
from defectflow.training.splits import time_split_folds
from defectflow.training.stage import cross_validate

EV = EvaluateParams(threshold_method="empirical")


def ahead_frame(seed: int = 0, n: int = 60) -> pd.DataFrame:
    """Three folds; every fold model scores its own block and every later one (scores differ per model)."""
    rng = np.random.default_rng(seed)
    rows = []
    y = {b: rng.integers(0, 2, n) for b in (1, 2, 3)}
    cam = {b: np.where(np.arange(n) % 2, "a", "b") for b in (1, 2, 3)}
    for fold in (1, 2, 3):
        for block in range(fold, 4):
            p = np.clip(0.3 * y[block] + rng.normal(0.35 + 0.1 * fold, 0.2, n), 0, 1)
            rows.append(pd.DataFrame({"fold": fold, "block": block, "y": y[block], "p_fail": p,
                                      "camera_id": cam[block]}))
    return pd.concat(rows, ignore_index=True)


def test_past_rules_are_the_pipelines_forward_points():
    ahead = ahead_frame()
    rules = threshold_probe.rule_points(ahead, EV)
    oof = ahead[ahead["block"] == ahead["fold"]]
    for method in ("empirical", "conformal", "lower_bound"):
        expected = forward_points(oof, EV.target_fail_recall, method)
        assert [r["fail_recall"] for r in rules[f"past_{method}"]] == [r["fail_recall"] for r in expected]
    assert [r["fold"] for r in rules["flag_share"]] == [2, 3]


def test_previous_model_scores_fold_k_with_fold_k_minus_1s_model_and_its_own_threshold():
    ahead = ahead_frame()
    rules = threshold_probe.rule_points(ahead, EV)
    own = ahead[(ahead["fold"] == 2) & (ahead["block"] == 2)]
    t = recall_threshold(own["y"].to_numpy(), own["p_fail"].to_numpy(), EV.target_fail_recall, "empirical")
    scored = ahead[(ahead["fold"] == 2) & (ahead["block"] == 3)]
    fails = scored["p_fail"][scored["y"] == 1]
    assert rules["previous_model"][1]["fail_recall"] == round(float((fails >= t).mean()), 4)
    carry = threshold_probe.carry(ahead, EV)
    assert carry[1]["recall_later"] == {3: rules["previous_model"][1]["fail_recall"]}
    assert list(carry[0]["recall_later"]) == [2, 3] and carry[2]["recall_later"] == {}


def test_flag_share_flags_the_largest_share_the_earlier_folds_needed():
    ahead = ahead_frame()
    oof = ahead[ahead["block"] == ahead["fold"]]
    shares = []
    for _, part in oof[oof["fold"] < 3].groupby("fold"):
        t = recall_threshold(part["y"].to_numpy(), part["p_fail"].to_numpy(), EV.target_fail_recall, "empirical")
        shares.append(float((part["p_fail"] >= t).mean()))
    got = threshold_probe.rule_points(ahead, EV)["flag_share"][1]
    assert got["review_reduction"] == round(1 - np.ceil(max(shares) * 60) / 60, 4)


def test_a_camera_without_earlier_fails_flags_all_its_images():
    ahead = ahead_frame()
    ahead.loc[(ahead["block"] == 1) & (ahead["camera_id"] == "a"), "y"] = 0
    per_camera = threshold_probe.rule_points(ahead, EV)["past_per_camera"][0]
    now = ahead[(ahead["fold"] == 2) & (ahead["block"] == 2)]
    a = now["camera_id"] == "a"
    assert per_camera["review_reduction"] <= 1 - a.mean() + 1e-9  # every camera-a image is flagged
    assert per_camera["fail_recall"] >= float(a[now["y"] == 1].mean()) - 1e-9


def test_scored_ahead_keeps_the_cv_fold_models():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n).astype(np.int8)
    X = (rng.normal(size=(n, 6)) + 0.8 * y[:, None]).astype(np.float32)
    meta = pd.DataFrame({"path": [f"{i}.png" for i in range(n)], "sha256": [str(i) for i in range(n)],
                         "captured_at": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), "min"),
                         "board_id": [f"b{i // 10}" for i in range(n)], "camera_id": "c",
                         "label": np.where(y == 1, "fail", "pass")})
    train = TrainParams(n_folds=3, early_stopping_rounds=5, min_rounds=5,
                        lgbm={"objective": "binary", "n_estimators": 30, "num_leaves": 4, "n_jobs": 1})
    ahead = threshold_probe.scored_ahead(meta, X, y, train, seed=3)
    folds = time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=3, min_train=train.min_train,
                             min_test=train.min_test)
    plain, _ = cross_validate(meta, X, y, folds, train, seed=3)
    own = ahead[ahead["block"] == ahead["fold"]].reset_index(drop=True)
    np.testing.assert_array_equal(own["p_fail"].to_numpy(), plain["p_fail"].to_numpy())
    assert sorted(ahead.groupby("fold").size().tolist()) == sorted(
        [sum(len(g.test_idx) for g in folds[k:]) for k in range(3)])
