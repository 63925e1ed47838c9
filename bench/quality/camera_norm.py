"""`python -m bench.quality.camera_norm RUN [RUN ...]`: does per-camera feature normalisation help?

Issue 10 asks to try normalising per camera (ELPV: mono vs poly cells, whose frozen-feature AUCs
differ, 0.59 vs 0.83). This reads the frozen features and manifest of finished `make quality`
runs (their workdirs under work/quality/runs/<variant>/<protocol>) and, on the same time-split
folds the pipeline uses, trains LightGBM (params.yaml `train.lgbm`, its full `n_estimators`, no
early stopping, so the variants differ only in their inputs) on:

  plain   the features as they are
  center  features minus the per-camera mean of the fold's training window
  zscore  per-camera mean and standard deviation of the training window
  onehot  the features plus a camera indicator

Statistics come from each fold's training window only (no leakage). Fine-tuned runs are refused:
their features.parquet comes from the final model's backbone, trained on every row.
Writes bench/results/camera-norm-<date>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bench import machine
from bench.quality.cli import RESULTS
from bench.results_file import write_result
from defectflow.evaluation.metrics import auc
from defectflow.params import Params, TrainParams
from defectflow.training.splits import time_split_folds

METHODS = ("plain", "center", "zscore", "onehot")


def per_camera(X_train: np.ndarray, X_test: np.ndarray, cam_train: np.ndarray, cam_test: np.ndarray,
               method: str) -> tuple[np.ndarray, np.ndarray]:
    """The fold's inputs under `method`; statistics from the training window only."""
    if method == "plain":
        return X_train, X_test
    if method == "onehot":
        cameras = sorted(set(cam_train))
        return (np.c_[X_train, np.stack([cam_train == c for c in cameras], 1)],
                np.c_[X_test, np.stack([cam_test == c for c in cameras], 1)])
    X_train, X_test = X_train.copy(), X_test.copy()
    for c in np.unique(cam_train):
        mu = X_train[cam_train == c].mean(0)
        sd = X_train[cam_train == c].std(0) + 1e-6 if method == "zscore" else 1.0
        X_test[cam_test == c] = (X_test[cam_test == c] - mu) / sd
        X_train[cam_train == c] = (X_train[cam_train == c] - mu) / sd
    return X_train, X_test


def run_one(run_dir: Path, train: TrainParams, seed: int) -> dict:
    spec = json.loads((run_dir / "features.json").read_text())
    if spec.get("finetune"):
        raise SystemExit(f"{run_dir}: fine-tuned features come from a backbone trained on every row; "
                         "use a frozen run (variant baseline or res300)")
    manifest = pd.read_parquet(run_dir / "manifest.parquet")
    rows = manifest[(manifest["status"] == "ok") & manifest["label"].isin(["pass", "fail"])]
    rows = rows.drop_duplicates("sha256").reset_index(drop=True)
    X = pd.read_parquet(run_dir / "features.parquet").set_index("sha256").loc[rows["sha256"]].to_numpy(np.float32)
    y = (rows["label"] == "fail").to_numpy(np.int8)
    cam = rows["camera_id"].astype(str).to_numpy()
    folds = time_split_folds(rows["captured_at"], rows["board_id"].astype(str), y, n_folds=train.n_folds,
                             gap_days=train.gap_days)
    return {"run": str(run_dir), "n": len(rows),
            "methods": {m: [round(fold_auc(X, y, cam, f, m, train, seed), 4) for f in folds] for m in METHODS}}


def fold_auc(X: np.ndarray, y: np.ndarray, cam: np.ndarray, fold, method: str, train: TrainParams,
             seed: int) -> float:
    import lightgbm as lgb

    a, b = per_camera(X[fold.train_idx], X[fold.test_idx], cam[fold.train_idx], cam[fold.test_idx], method)
    lgbm = dict(train.lgbm)
    rounds = int(lgbm.pop("n_estimators"))
    lgbm.update(verbose=-1, seed=seed, deterministic=True)
    booster = lgb.train(lgbm, lgb.Dataset(a, y[fold.train_idx]), num_boost_round=rounds)
    return auc(y[fold.test_idx], booster.predict(b))


def to_markdown(result: dict) -> str:
    lines = ["# Per-camera feature normalisation (frozen features, time-split folds)", "",
             f"Machine: **{machine.summary_line(result['machine'])}**; {result['elapsed_s']} s. "
             f"Command: `{result['command']}`. LightGBM from params.yaml, all `n_estimators` rounds "
             "(no early stopping), statistics from each fold's training window.", "",
             "| run | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for r in result["runs"]:
        cells = [f"{np.mean(v):.3f} ({' / '.join(f'{a:.3f}' for a in v)})" for v in r["methods"].values()]
        lines.append(f"| `{Path(r['run']).relative_to(Path(r['run']).parents[1])}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.quality.camera_norm", description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="+", help="workdirs of finished frozen `make quality` runs")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    params = Params.load(args.params)
    started = time.perf_counter()
    runs = [run_one(r, params.section("train", TrainParams), params.seed) for r in args.runs]
    result = {"benchmark": "camera_norm", "command": "python -m bench.quality.camera_norm "
              + " ".join(str(r) for r in args.runs), "machine": machine.describe("cpu"), "runs": runs,
              "elapsed_s": round(time.perf_counter() - started, 1),
              "date": f"{datetime.now(UTC):%Y-%m-%d}"}
    write_result(args.out, f"camera-norm-{result['date']}", result, to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
