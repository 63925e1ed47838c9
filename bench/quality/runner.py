"""Run the pipeline's stage functions for one (protocol, variant) and collect its figures."""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from pathlib import Path

import pandas as pd

from defectflow.evaluation.stage import evaluate
from defectflow.features.stage import featurize
from defectflow.params import EvaluateParams, FeaturizeParams, GateParams, Params, TrainParams, ValidateParams
from defectflow.training.stage import train
from defectflow.validation.stage import validate
from defectflow.workdir import Workdir


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (DataLoader workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    """Wall and CPU seconds per named step."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, name: str, func, *args, **kwargs):
        w, c = time.perf_counter(), cpu_seconds()
        try:
            return func(*args, **kwargs)
        finally:
            self.wall[name] = round(time.perf_counter() - w, 2)
            self.cpu[name] = round(cpu_seconds() - c, 2)


# Sections only the evaluate stage reads: variants differing only there share the trained models.
EVALUATE_ONLY = ("evaluate", "gate")


def training_key(params: Params) -> str:
    """Everything validate/featurize/train depend on (the params tree without EVALUATE_ONLY)."""
    return json.dumps({k: v for k, v in params.tree.items() if k not in EVALUATE_ONLY}, sort_keys=True, default=str)


def run_one(data_dir: Path, workdir: Path, feature_store: Path, params: Params, progress: bool,
            trained_in: Path | None = None) -> dict:
    """validate → featurize → train → evaluate into `workdir` (its feature store shared); the figures.

    With `trained_in` (a finished run whose params differ only in EVALUATE_ONLY sections), its
    stage outputs are copied and only evaluate runs: the same models, judged by other rules.
    """
    if workdir.exists():
        shutil.rmtree(workdir)
    feature_store.mkdir(parents=True, exist_ok=True)
    wd, clock = Workdir(workdir), Clock()
    if trained_in is not None:
        shutil.copytree(trained_in, workdir, symlinks=True, ignore=shutil.ignore_patterns("metrics", "plots"))
        earlier = json.loads((trained_in / "bench-run.json").read_text())
        feat, trained = earlier["featurize"], earlier["train"]
        clock.wall.update(validate=0.0, featurize=0.0, train=0.0)
        clock.cpu.update(validate=0.0, featurize=0.0, train=0.0)
    else:
        workdir.mkdir(parents=True)
        os.symlink(feature_store.resolve(), workdir / "feature_store", target_is_directory=True)
        clock.run("validate", validate, data_dir, wd, params.section("validate", ValidateParams))
        feat = clock.run("featurize", featurize, data_dir, wd, params.section("featurize", FeaturizeParams),
                         params.seed, progress=progress)
        trained = clock.run("train", train, wd, params.section("train", TrainParams), params.seed)
        (workdir / "bench-run.json").write_text(json.dumps({"featurize": feat, "train": trained}, default=str))
    metrics = clock.run("evaluate", evaluate, wd, params.section("evaluate", EvaluateParams),
                        params.section("gate", GateParams))
    return figures(metrics, feat, trained, clock, wd) | {"evaluate_only": trained_in is not None}


def figures(metrics: dict, feat: dict, trained: dict, clock: Clock, wd: Workdir) -> dict:
    """What the report needs from one run (everything else stays in the run's workdir)."""
    oof = pd.read_parquet(wd.oof_predictions)
    return {
        "fold_auc": [f["auc"] for f in metrics["folds"]],
        "fold_auc_ci95": [f["auc_ci95"] for f in metrics["folds"]],
        "mean_auc": metrics["mean_auc"],
        "best_iteration": [f["best_iteration"] for f in metrics["folds"]],
        "rounds_used": [f["rounds_used"] for f in metrics["folds"]],
        "final_rounds": trained["final_rounds"],
        "forward": metrics["forward"],
        "in_sample": {k: metrics[k] for k in ("threshold", "fail_recall", "review_reduction", "missed_fails")},
        "cameras": metrics["cameras"],
        "gate": metrics["gate"],
        "n_labelled": trained["n_labelled"], "n_fail": trained["n_fail"], "n_oof": int(len(oof)),
        "featurizer_id": feat["featurizer_id"], "device": feat["device"],
        "featurize": {k: feat[k] for k in ("n_computed", "n_cached", "images_per_s")},
        "wall_s": clock.wall, "cpu_s": clock.cpu,
        "workdir": str(wd.root),
    }
