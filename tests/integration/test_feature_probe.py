"""Smoke of the frozen-feature probe: real ELPV cells, the reference candidate is the shipped featurizer."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

pytestmark = pytest.mark.integration

SMOKE = ["--limit", "240", "--module-size", "20", "--seeds", "0,1", "--candidates", "mnv2_224,stats",
         "--set", "train.n_folds=3", "--set", "train.lgbm.n_estimators=40"]


def test_feature_probe_smoke_and_reference_equals_shipped_featurizer(tmp_path):
    from bench.quality.feature_probe import main
    from defectflow.features.backbones import build_backbone
    from defectflow.features.extract import FeatureExtractor

    assert main([*SMOKE, "--logistic", "--scratch", str(tmp_path / "q"), "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / f"feature-probe-{datetime.now(UTC):%Y-%m-%d}.json").read_text())
    rows = {r["name"]: r for r in result["candidates"]}
    assert list(rows) == ["mnv2_224", "mnv2_224_logistic", "stats", "stats_logistic"]
    for r in rows.values():
        assert list(r["folds"]) == ["time", "unseen", "random"]
        assert len(r["folds"]["time"]) == 3 and len(r["folds"]["unseen"]) == 6  # two seeds pooled
        assert all(0 <= a <= 1 for v in r["folds"].values() for a in v)
    assert rows["stats"]["dim"] == rows["stats_logistic"]["dim"] == 38 and rows["mnv2_224"]["dim"] == 1280
    # The reference row measures the product's own features, not a look-alike.
    probe = np.load(tmp_path / "q" / "feature-probe" / "mnv2_224-240.npy")
    model, spec = build_backbone("mobilenet_v2", "IMAGENET1K_V1", 224, seed=42)
    images = sorted((tmp_path / "q" / "elpv" / "images").glob("*.png"))[:8]
    shipped = FeatureExtractor(model, spec, num_workers=0).transform(images)
    np.testing.assert_allclose(probe[:8], shipped, atol=1e-4)

    # The shift probe trains on the same cached features (concatenated here), one row per rule.
    from bench.quality.shift_probe import RULES
    from bench.quality.shift_probe import main as shift_main

    shift = [a for a in SMOKE if a != "mnv2_224,stats" and a != "--candidates"]
    assert shift_main([*shift, "--features", "mnv2_224,stats", "--scratch", str(tmp_path / "q"),
                       "--out", str(tmp_path / "out"), "--stem", "shift"]) == 0
    result = json.loads((tmp_path / "out" / "shift.json").read_text())
    assert [r["name"] for r in result["candidates"]] == [r.name for r in RULES]
    assert all(r["dim"] == 1280 + 38 for r in result["candidates"])
    assert result["n_uncertain"] > 0
    for r in result["candidates"]:
        assert all(0 <= a <= 1 for v in r["folds"].values() for a in v) and len(r["folds"]["time"]) == 3

    # The threshold probe runs the pipeline's CV on the same cache: every rule on folds 2 and 3.
    from bench.quality.threshold_probe import main as threshold_main

    assert threshold_main([*shift, "--set", "train.min_train=50", "--features", "mnv2_224",
                           "--scratch", str(tmp_path / "q"), "--out", str(tmp_path / "out"), "--stem", "threshold"],
                          progress=lambda _: None) == 0
    result = json.loads((tmp_path / "out" / "threshold.json").read_text())
    assert list(result["protocols"]) == ["time", "unseen-0", "unseen-1"]
    for protocol in result["protocols"].values():
        assert len(protocol["fold_auc"]) == 3 and [c["fold"] for c in protocol["carry"]] == [1, 2, 3]
        for points in protocol["rules"].values():
            assert all(0 <= r["fail_recall"] <= 1 and 0 <= r["missed_fails"] <= r["n_fail"] for r in points)
    assert "in_sample" in result["protocols"]["time"]["rules"]


def test_head_probe_smoke_fine_tunes_each_fold_on_its_window(tmp_path):
    from bench.quality.head_probe import SCORES, main

    args = ["--limit", "240", "--module-size", "20", "--protocols", "time", "--set", "train.n_folds=3",
            "--set", "featurize.finetune.epochs=1", "--set", "featurize.finetune.min_rows=100",
            "--set", "featurize.image_size=48", "--set", "featurize.num_workers=0",
            "--set", "train.lgbm.n_estimators=30", "--scratch", str(tmp_path / "q"), "--out", str(tmp_path / "out"),
            "--stem", "smoke"]
    assert main(args) == 0
    folds = json.loads((tmp_path / "out" / "smoke.json").read_text())["protocols"]["time"]
    assert [f["fold"] for f in folds] == [1, 2, 3]
    assert "auc" not in folds[0] and folds[0]["rows"] < 100  # under min_rows: frozen, as the product does
    for f in folds[1:]:
        assert set(f["auc"]) == set(SCORES) and all(0 <= a <= 1 for a in f["auc"].values())
        assert len(f["history"]) == 1
    # One fine-tuned backbone and one head per fine-tuned window, keyed by its rows.
    assert len(list((tmp_path / "q" / "head-probe").glob("*.head.pth"))) == 2


def test_tail_probe_smoke_tunes_the_tail_of_each_fold_on_cached_activations(tmp_path):
    from bench.quality.tail_probe import SCORES, main

    args = ["--limit", "240", "--module-size", "20", "--seeds", "0", "--tune-seeds", "0,1", "--cuts", "16,15",
            "--set", "train.n_folds=3", "--set", "train.lgbm.n_estimators=30", "--set", "featurize.finetune.epochs=1",
            "--set", "featurize.finetune.min_rows=100", "--scratch", str(tmp_path / "q"),
            "--out", str(tmp_path / "out"), "--stem", "tail"]
    assert main(args) == 0
    result = json.loads((tmp_path / "out" / "tail.json").read_text())
    names = [r["name"] for r in result["candidates"]]
    assert names == ["frozen"] + [f"cut{c}_{s}" for c in (16, 15) for s in SCORES if s != "frozen"]
    for r in result["candidates"]:
        assert list(r["folds"]) == ["time", "unseen"] and len(r["folds"]["time"]) == 3
        assert all(0 <= a <= 1 for v in r["folds"].values() for a in v)
    by_name = {r["name"]: r["folds"]["time"] for r in result["candidates"]}
    # Fold 1's window is under min_rows: every score keeps the frozen features there.
    assert len({v[0] for v in by_name.values()}) == 1
    assert by_name["cut16_head"][1:] != by_name["frozen"][1:]  # the tuned windows score differently
    assert sorted(p.name for p in (tmp_path / "q" / "tail-probe").glob("*.npy")) == [
        "lite0-300-cut15-240.npy", "lite0-300-cut16-240.npy"]
    rows = {r["name"]: r for r in result["candidates"]}
    # The time split's forward operating point: folds 2 and 3, thresholds chosen on earlier folds only.
    for name in ("frozen", "cut16_head", "cut16_lightgbm", "cut15_lightgbm"):
        forward = rows[name]["forward"]
        assert [f["fold"] for f in forward] == [2, 3]
        assert all(0 <= f["fail_recall"] <= 1 and 0 <= f["missed_fails"] <= f["n_fail"] for f in forward)
    assert "forward" not in rows["cut16_frozen+head"]  # a rank within one block is no shippable threshold
    # One seed alone: fold 1 keeps the frozen AUC, tuned folds give each seed its own figure.
    seeds = rows["cut16_lightgbm"]["single_seeds"]
    assert [s["seed"] for s in seeds] == [0, 1]
    assert all(s["folds"]["time"][0] == by_name["frozen"][0] for s in seeds)
    assert seeds[0]["folds"]["time"][1:] != seeds[1]["folds"]["time"][1:]
    assert "Forward operating point" in (tmp_path / "out" / "tail.md").read_text()
