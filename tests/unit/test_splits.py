"""Time-split cross-validation: ordering, board grouping, gap, and no leakage from test windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from defectflow.errors import DefectflowError
from defectflow.params import TrainParams
from defectflow.training.splits import inner_validation_split, time_split_folds
from defectflow.training.stage import cross_validate


def _frame(n: int = 400, seed: int = 0, boards_span_days: bool = False) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = pd.Timestamp("2026-09-01", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, 40, n)), unit="D")
    boards = np.arange(n) // 4
    if boards_span_days:  # some boards photographed again weeks later
        boards[rng.choice(n, 40, replace=False)] = rng.integers(0, n // 4, 40)
    y = rng.integers(0, 2, n).astype(np.int8)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    X[:, 0] += y * 1.5  # learnable signal
    meta = pd.DataFrame({"path": [f"img{i}.png" for i in range(n)], "sha256": [f"{i:064x}" for i in range(n)],
                         "captured_at": t, "board_id": boards.astype(str), "camera_id": "c1",
                         "label": np.where(y == 1, "fail", "pass")})
    return meta, X, y


def test_folds_train_strictly_before_test_and_expand():
    meta, _, y = _frame()
    folds = time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=4)
    assert [f.index for f in folds] == [1, 2, 3, 4]
    sizes = [len(f.train_idx) for f in folds]
    assert sizes == sorted(sizes) and sizes[0] > 0
    for f in folds:
        assert meta["captured_at"].iloc[f.train_idx].max() < meta["captured_at"].iloc[f.test_idx].min()
    # Test windows tile the later blocks without overlap.
    tested = np.concatenate([f.test_idx for f in folds])
    assert len(tested) == len(set(tested))


def test_no_board_on_both_sides_even_when_boards_span_time():
    meta, _, y = _frame(boards_span_days=True)
    for f in time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=3):
        train_boards = set(meta["board_id"].iloc[f.train_idx])
        test_boards = set(meta["board_id"].iloc[f.test_idx])
        assert not train_boards & test_boards


def test_gap_keeps_a_margin_before_each_test_window():
    meta, _, y = _frame()
    for f in time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=3, gap_days=2):
        margin = meta["captured_at"].iloc[f.test_idx].min() - meta["captured_at"].iloc[f.train_idx].max()
        assert margin >= pd.Timedelta(days=2)


def test_too_little_data_says_what_to_change():
    meta, _, y = _frame(n=40)
    with pytest.raises(DefectflowError, match="train.n_folds"):
        time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=4, min_train=30)


def test_inner_validation_is_the_newest_part_of_the_window():
    meta, _, _ = _frame()
    fit, val = inner_validation_split(meta["captured_at"], meta["board_id"], 0.2)
    assert meta["captured_at"].iloc[fit].max() < meta["captured_at"].iloc[val].min()
    assert not set(meta["board_id"].iloc[fit]) & set(meta["board_id"].iloc[val])


@pytest.mark.parametrize("fold_refit", [False, True])
def test_nothing_from_a_test_window_reaches_its_fold_model(fold_refit):
    """Scramble every label and feature inside fold k's test window and later: fold k's
    out-of-fold predictions must not change by a single bit (also when each fold is refit on its
    whole training window, train.fold_refit)."""
    meta, X, y = _frame()
    params = TrainParams(n_folds=3, min_train=20, min_test=20, early_stopping_rounds=10, fold_refit=fold_refit,
                         lgbm={"n_estimators": 60, "num_leaves": 7, "learning_rate": 0.1, "min_child_samples": 5})
    folds = time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=3)
    baseline, _ = cross_validate(meta, X, y, folds, params, seed=1)

    k = folds[1]
    future = np.arange(k.test_idx.min(), len(y))  # the test window and everything after it
    rng = np.random.default_rng(99)
    X2, y2 = X.copy(), y.copy()
    X2[future] = rng.normal(size=(len(future), X.shape[1]))
    y2[future] = 1 - y2[future]
    # Scoring the same test rows needs their original features: restore only those.
    X2[k.test_idx] = X[k.test_idx]
    scrambled, _ = cross_validate(meta, X2, y2, folds, params, seed=1)

    for fold in (1, 2):
        a = baseline.loc[baseline["fold"] == fold, "p_fail"].to_numpy()
        b = scrambled.loc[scrambled["fold"] == fold, "p_fail"].to_numpy()
        np.testing.assert_array_equal(a, b)
    # The check has teeth: the fold that trains on the scrambled rows does change.
    a3 = baseline.loc[baseline["fold"] == 3, "p_fail"].to_numpy()
    b3 = scrambled.loc[scrambled["fold"] == 3, "p_fail"].to_numpy()
    assert not np.array_equal(a3, b3)


def test_the_anomaly_head_sees_only_its_folds_pass_images(tmp_path):
    """The same scramble with the anomaly head on: fold k's anomaly scores, novelty threshold and
    predictions do not change when every patch map and label from its test window on is replaced."""
    from defectflow.anomaly.cv import AnomalyCV
    from defectflow.anomaly.store import PatchStore
    from defectflow.params import AnomalyParams

    meta, X, y = _frame(n=240)
    params = TrainParams(n_folds=3, min_train=20, min_test=20, early_stopping_rounds=10,
                         lgbm={"n_estimators": 40, "num_leaves": 7, "learning_rate": 0.1, "min_child_samples": 5})
    folds = time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=3)
    rng = np.random.default_rng(5)
    patches = rng.normal(size=(len(y), 16, 6)).astype(np.float32)
    patches[y == 1, 3] += 2.0  # fails have an odd patch: the score carries signal
    head = AnomalyParams(method="padim", cross_fit=3, as_feature=True, novelty_quantile=0.9)

    def run(name: str, maps: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
        store = PatchStore(tmp_path / name, "f", "layer")
        store.put_many(list(meta["sha256"]), maps)
        anomaly = AnomalyCV(store, meta["sha256"].to_numpy(), meta["board_id"].to_numpy(), head, seed=1)
        return cross_validate(meta, X, labels, folds, params, seed=1, anomaly=anomaly)[0]

    baseline = run("a", patches, y)
    k = folds[1]
    future = np.arange(k.test_idx.min(), len(y))
    maps2, y2 = patches.copy(), y.copy()
    maps2[future] = rng.normal(3.0, 2.0, size=(len(future), 16, 6))
    y2[future] = 1 - y2[future]
    maps2[k.test_idx] = patches[k.test_idx]  # scoring fold 2's rows needs their own maps
    scrambled = run("b", maps2, y2)

    for fold in (1, 2):
        a, b = baseline[baseline["fold"] == fold], scrambled[scrambled["fold"] == fold]
        for column in ("anomaly_score", "novelty_threshold", "p_fail"):
            np.testing.assert_array_equal(a[column].to_numpy(), b[column].to_numpy())
    a3, b3 = baseline[baseline["fold"] == 3], scrambled[scrambled["fold"] == 3]
    assert not np.array_equal(a3["novelty_threshold"].to_numpy(), b3["novelty_threshold"].to_numpy())
    assert baseline["novel"].any()


def _image_frame(root, n: int, seed: int, future_from: int | None = None):
    """Small PNGs (a bright square marks a fail) with a time-ordered metadata frame like train's.
    From row `future_from` on, images are different noise and labels flipped (a scrambled future)."""
    from PIL import Image

    from defectflow.hashing import sha256_file

    y = (np.arange(n) % 3 == 0).astype(np.int8)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        scrambled = future_from is not None and i >= future_from
        pix = np.random.default_rng((seed if scrambled else 0) * 1000 + i).integers(0, 120, (24, 24, 3))
        if y[i] and not scrambled:
            pix[6:14, 6:14] = 250
        Image.fromarray(pix.astype(np.uint8)).save(root / f"img{i:03d}.png")
        paths.append(f"img{i:03d}.png")
    if future_from is not None:
        y[future_from:] = 1 - y[future_from:]
    t = pd.Timestamp("2026-09-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 60, unit="min")
    meta = pd.DataFrame({"path": paths, "sha256": [sha256_file(root / p) for p in paths], "captured_at": t,
                         "board_id": (np.arange(n) // 3).astype(str), "camera_id": "c1",
                         "label": np.where(y == 1, "fail", "pass")})
    return meta, y


def test_finetuned_fold_features_come_only_from_the_fold_training_window(tmp_path):
    """featurize.mode=finetune: fold k's backbone is fine-tuned on fold k's training window only.
    Replace every image and flip every label from fold 1's test window on: fold 1's fine-tuned
    weights (retrained from scratch in a fresh cache) and its training features are bit-identical."""
    import dataclasses
    import json

    from defectflow.features.finetune import weights_key
    from defectflow.features.tuned import FoldFeaturizer, labelled_rows
    from defectflow.params import FeaturizeParams
    from defectflow.workdir import Workdir

    n = 60
    meta, y = _image_frame(tmp_path / "a", n, seed=1)
    folds = time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=2)
    fold = folds[0]
    meta2, y2 = _image_frame(tmp_path / "b", n, seed=2, future_from=int(fold.test_idx.min()))
    featurize = FeaturizeParams(weights="none", image_size=16, batch_size=16, num_workers=0, mode="finetune",
                                finetune={"epochs": 1, "batch_size": 10, "val_fraction": 0.25, "min_rows": 0})

    def run(meta_, data, work):
        record = {"params": dataclasses.asdict(featurize), "seed": 3, "data_dir": str(tmp_path / data)}
        return FoldFeaturizer(record, meta_, Workdir(tmp_path / work), progress=False)(fold)

    X1, info1 = run(meta, "a", "w1")
    X2, info2 = run(meta2, "b", "w2")
    sidecar = json.loads((tmp_path / "w1" / "feature_store" / "finetuned" / info1["finetuned_weights"])
                         .with_suffix(".json").read_text())
    assert sidecar["n_rows"] == info1["finetune_rows"] == len(fold.train_idx)
    outside = np.setdiff1d(np.arange(n), np.r_[fold.train_idx, fold.test_idx])
    assert np.isnan(X1[outside]).all()  # rows outside the fold are never featurized
    assert info1["finetuned_weights"] == info2["finetuned_weights"]
    np.testing.assert_array_equal(X1[fold.train_idx], X2[fold.train_idx])
    # The check has teeth: the next fold trains on the scrambled rows, so its weights key differs.
    ft = featurize.finetune_params()
    keys = [weights_key("mobilenet_v2", "none", 16, ft, 3, labelled_rows(m.iloc[folds[1].train_idx], tmp_path / d))
            for m, d in ((meta, "a"), (meta2, "b"))]
    assert keys[0] != keys[1]
    # Same images and labels captured at other times: another early-stopping slice, another key.
    shifted = meta.assign(captured_at=meta["captured_at"].iloc[::-1].to_numpy())
    moved = weights_key("mobilenet_v2", "none", 16, ft, 3,
                        labelled_rows(shifted.iloc[folds[1].train_idx], tmp_path / "a"))
    assert moved != keys[0]


def test_a_window_under_finetune_min_rows_keeps_the_frozen_features(tmp_path):
    """A training window with fewer rows than featurize.finetune.min_rows is not fine-tuned: the
    fold gets the frozen backbone's features, and folds.json says so (no weights file, 0 rows)."""
    import dataclasses

    from defectflow.features.backbones import build_backbone
    from defectflow.features.extract import FeatureExtractor
    from defectflow.features.tuned import FoldFeaturizer
    from defectflow.params import FeaturizeParams
    from defectflow.workdir import Workdir

    meta, y = _image_frame(tmp_path / "a", 40, seed=1)
    fold = time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=2)[0]
    featurize = FeaturizeParams(weights="none", image_size=16, batch_size=16, num_workers=0, mode="finetune",
                                finetune={"epochs": 1, "min_rows": len(fold.train_idx) + 1})
    record = {"params": dataclasses.asdict(featurize), "seed": 3, "data_dir": str(tmp_path / "a")}
    X, info = FoldFeaturizer(record, meta, Workdir(tmp_path / "w"), progress=False)(fold)
    assert info == {"finetuned_weights": None, "finetune_rows": 0}
    assert not (tmp_path / "w" / "feature_store" / "finetuned").exists()
    model, spec = build_backbone("mobilenet_v2", "none", 16, 3)
    rows = np.r_[fold.train_idx, fold.test_idx]
    sources = [str(tmp_path / "a" / p) for p in meta["path"].iloc[rows]]
    frozen = FeatureExtractor(model, spec, "cpu", 16, 0).transform(sources)
    np.testing.assert_allclose(X[rows], frozen, atol=1e-5)


def test_fold_refit_fits_the_whole_window_with_the_early_stopped_rounds():
    """train.fold_refit: same rounds as early stopping chose, but the model also learns from the
    newest rows the inner split held out, so its out-of-fold predictions differ."""
    meta, X, y = _frame()
    folds = time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=2)
    lgbm = {"n_estimators": 60, "num_leaves": 7, "learning_rate": 0.1, "min_child_samples": 5}
    inner, a = cross_validate(meta, X, y, folds, TrainParams(n_folds=2, early_stopping_rounds=10, min_rounds=5,
                                                             lgbm=lgbm), seed=1)
    refit, b = cross_validate(meta, X, y, folds, TrainParams(n_folds=2, early_stopping_rounds=10, min_rounds=5,
                                                             fold_refit=True, lgbm=lgbm), seed=1)
    assert [r["rounds_used"] for r in a] == [r["rounds_used"] for r in b]
    assert [r["refit_on_window"] for r in b] == [True, True]
    assert not np.array_equal(inner["p_fail"].to_numpy(), refit["p_fail"].to_numpy())


def test_a_fold_whose_early_stopping_collapses_is_refit_with_min_rounds():
    """A validation slice with no signal stops early stopping after one round; train.min_rounds
    refits that fold, and folds.json keeps both numbers."""
    meta, X, y = _frame()
    rng = np.random.default_rng(5)
    folds = time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=2)
    lgbm = {"n_estimators": 80, "num_leaves": 7, "learning_rate": 0.1, "min_child_samples": 5}
    X_noise = rng.normal(size=X.shape).astype(np.float32)  # nothing to learn: validation loss rises at once
    floor = TrainParams(n_folds=2, early_stopping_rounds=5, min_rounds=30, lgbm=lgbm)
    _, records = cross_validate(meta, X_noise, y, folds, floor, seed=1)
    assert all(r["best_iteration"] < 30 for r in records)
    assert all(r["rounds_used"] == 30 for r in records)
    _, unfloored = cross_validate(meta, X_noise, y, folds, TrainParams(n_folds=2, early_stopping_rounds=5,
                                                                       min_rounds=0, lgbm=lgbm), seed=1)
    assert [r["rounds_used"] for r in unfloored] == [r["best_iteration"] for r in records]
