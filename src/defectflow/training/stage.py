"""The train stage: time-split cross-validation (out-of-fold predictions per fold), then the
final model on all labelled data."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import track

from defectflow import atomic
from defectflow.anomaly.cv import AnomalyCV
from defectflow.errors import DefectflowError
from defectflow.features.tuned import FoldFeaturizer, finetune_record
from defectflow.params import AnomalyParams, TrainParams
from defectflow.training.booster import BoosterFitter, best_rounds, fit_booster
from defectflow.training.splits import Fold, inner_validation_split, time_split_folds
from defectflow.workdir import Workdir

log = logging.getLogger(__name__)
META_COLUMNS = ["path", "sha256", "captured_at", "board_id", "camera_id", "label"]


def load_training_table(workdir: Workdir) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Labelled usable images in capture-time order: (metadata, features X, labels y with fail=1)."""
    for path, stage in ((workdir.manifest, "validate"), (workdir.features, "featurize")):
        if not path.exists():
            raise DefectflowError(f"{path} not found: run `defectflow {stage}` first")
    manifest = pd.read_parquet(workdir.manifest)
    labelled = manifest[(manifest["status"] == "ok") & manifest["label"].isin(["pass", "fail"])]
    features = pd.read_parquet(workdir.features)
    table = labelled[META_COLUMNS].merge(features, on="sha256", how="inner", validate="many_to_one")
    if len(table) < len(labelled):
        raise DefectflowError(f"{len(labelled) - len(table)} labelled images have no features: re-run featurize")
    table = table.sort_values(["captured_at", "path"], kind="stable").reset_index(drop=True)
    # Without a board id every image is its own group.
    table["board_id"] = table["board_id"].fillna(table["path"]).astype(str)
    X = table[[c for c in features.columns if c != "sha256"]].to_numpy(np.float32)
    y = (table["label"] == "fail").to_numpy(np.int8)
    return table[META_COLUMNS], X, y


def cross_validate(meta: pd.DataFrame, X: np.ndarray, y: np.ndarray, folds: list[Fold],
                   params: TrainParams, seed: int, fit: BoosterFitter = fit_booster,
                   anomaly: AnomalyCV | None = None, fold_features=None) -> tuple[pd.DataFrame, list[dict]]:
    """Out-of-fold fail probabilities: each fold's model sees only its own training window.

    `fit` grows each booster: `fit_booster` here, or its Dask twin (distributed.train_dask).
    With `anomaly`, each fold also fits the anomaly head on its window's pass images (its score
    may be one more feature) and its out-of-fold rows gain `anomaly_score` and `novel`.
    `fold_features(fold) -> (X, info)` gives a fold its own features (a backbone fine-tuned on
    that fold's training window: features.tuned.FoldFeaturizer); None uses `X` for every fold.
    """
    X_all = X
    oof_parts, records = [], []
    # Progress on stderr: stdout carries the --json summary.
    for fold in track(folds, description="time-split CV", console=Console(stderr=True)):
        X, info = fold_features(fold) if fold_features is not None else (X_all, {})
        tr_meta = meta.iloc[fold.train_idx]
        fit_pos, val_pos = inner_validation_split(tr_meta["captured_at"], tr_meta["board_id"], params.val_fraction)
        fit_idx, val_idx = fold.train_idx[fit_pos], fold.train_idx[val_pos]
        head = anomaly.fit(fold.train_idx, y) if anomaly else None
        Xk, scores = head.features(X, fold.test_idx) if head else (X, None)
        if params.early_stopping_rounds == 0 and params.fold_refit:  # the whole-window fit below is the model
            best = int(params.lgbm["n_estimators"])
        else:
            booster = fit(Xk[fit_idx], y[fit_idx], params.lgbm, seed, X_val=Xk[val_idx], y_val=y[val_idx],
                          early_stopping_rounds=params.early_stopping_rounds)
            best = best_rounds(booster)
        rounds = max(best, params.min_rounds)
        if best < params.min_rounds:  # an unrepresentative validation slice must not collapse the fold model
            log.warning("fold %d: early stopping chose %d rounds (< train.min_rounds=%d); refit with %d",
                        fold.index, best, params.min_rounds, rounds)
        if params.fold_refit or best < params.min_rounds:
            # fold_refit: the newest rows the inner split held out are the ones most like the test window
            rows = fold.train_idx if params.fold_refit else fit_idx
            booster = fit(Xk[rows], y[rows], params.lgbm, seed, num_boost_round=rounds)
        part = meta.iloc[fold.test_idx].copy()
        part["y"] = y[fold.test_idx]
        part["fold"] = fold.index
        part["p_fail"] = booster.predict(Xk[fold.test_idx], num_iteration=rounds)
        if head:
            head.annotate(part, scores[fold.test_idx])
        oof_parts.append(part)
        records.append({
            "fold": fold.index, "n_train": int(len(fold.train_idx)), "n_fit": int(len(fit_idx)),
            "n_val": int(len(val_idx)), "n_test": int(len(fold.test_idx)),
            "train_end": meta["captured_at"].iloc[fold.train_idx].max(),
            "test_start": fold.test_start, "test_end": fold.test_end, "best_iteration": best, "rounds_used": rounds,
            "refit_on_window": params.fold_refit,
            **info,
        })
        log.info("fold %d: %d train / %d test, %d rounds", fold.index, len(fold.train_idx), len(fold.test_idx), rounds)
    return pd.concat(oof_parts, ignore_index=True), records


def train(workdir: Workdir, params: TrainParams, seed: int, fit: BoosterFitter = fit_booster,
          anomaly: AnomalyParams | None = None) -> dict:
    """Cross-validate, then fit the final model on every labelled image with the median of the
    folds' early-stopping rounds (no data left over to early-stop on). `fit` grows every booster
    (a Dask fitter from distributed.train_dask grows the trees across workers); folds, rounds and
    outputs are the same code. With the anomaly head on, the final one is fitted on every labelled
    pass image (model/anomaly.npz).
    """
    meta, X, y = load_training_table(workdir)
    anomaly_cv = AnomalyCV.for_table(workdir, meta, anomaly, seed) if anomaly and anomaly.enabled else None
    folds = time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=params.n_folds,
                             gap_days=params.gap_days, min_train=params.min_train, min_test=params.min_test)
    record = finetune_record(workdir)
    fold_features = FoldFeaturizer(record, meta, workdir) if record else None
    oof, records = cross_validate(meta, X, y, folds, params, seed, fit=fit, anomaly=anomaly_cv,
                                  fold_features=fold_features)
    final_rounds = max(params.min_rounds, int(np.median([r["rounds_used"] for r in records])))
    head = anomaly_cv.fit(np.arange(len(y)), y) if anomaly_cv else None
    booster = fit(head.features(X, np.arange(0))[0] if head else X, y, params.lgbm, seed,
                  num_boost_round=final_rounds)

    features_spec = json.loads(workdir.features_spec.read_text())["spec"]
    model_spec = {
        "featurizer": features_spec,
        "num_boost_round": final_rounds,
        "n_train": int(len(y)),
        "n_fail": int(y.sum()),
        "positive_class": "fail",
        "trained_until": str(meta["captured_at"].max()),
        "seed": seed,
    }
    workdir.model_dir.mkdir(parents=True, exist_ok=True)
    workdir.anomaly_head.unlink(missing_ok=True)  # never ship a head this run did not fit
    if head:
        model_spec["anomaly"] = head.save(workdir.anomaly_head, anomaly_cv.store.layer, features_spec["image_size"])
    atomic.write_text(workdir.booster, booster.model_to_string())
    atomic.write_json(workdir.model_spec, model_spec)
    with atomic.atomic_path(workdir.oof_predictions, suffix=".parquet") as tmp:
        oof.to_parquet(tmp, index=False)
    atomic.write_json(workdir.folds, records)
    return {"n_labelled": int(len(y)), "n_fail": int(y.sum()), "folds": records, "final_rounds": final_rounds,
            "model_dir": str(workdir.model_dir)}
