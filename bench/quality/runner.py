"""Run the pipeline's stage functions for one (protocol, variant) and collect its figures."""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from pathlib import Path

import pandas as pd

from defectflow import atomic
from defectflow.params import Params
from defectflow.stages import StageRun, stage
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
EVALUATE_ONLY = stage("evaluate").params
RUN_RECORD = "bench-run.json"


def training_key(params: Params, protocol: str, dataset: dict) -> str:
    """Everything validate/featurize/train depend on: the data (protocol, dataset slice) and
    the params tree without EVALUATE_ONLY."""
    tree = {k: v for k, v in params.tree.items() if k not in EVALUATE_ONLY}
    return json.dumps({"protocol": protocol, "dataset": dataset, "params": tree}, sort_keys=True, default=str)


def run_one(data_dir: Path, workdir: Path, feature_store: Path, params: Params, key: str, progress: bool,
            trained_in: Path | None = None, resume: bool = False) -> dict:
    """validate → featurize → train → evaluate into `workdir` (its feature store shared); the figures.

    The stages run through their declarations (defectflow.stages) with every params section the CLI
    passes them (featurize and train also get `anomaly`, `executor`).

    With `trained_in` (a run of this invocation whose params differ only in EVALUATE_ONLY
    sections), its outputs are copied and only evaluate runs: the same models, other rules.
    With `resume`, a finished run in `workdir` with the same key is kept and only re-evaluated;
    its recorded stage times are reported (and the run marked `reused`).
    """
    feature_store.mkdir(parents=True, exist_ok=True)
    wd, clock = Workdir(workdir), Clock()
    run = StageRun(data_dir, wd, params, progress=progress)  # the stages as the CLI and `dvc repro` run them
    record_path = workdir / RUN_RECORD
    earlier = json.loads(record_path.read_text()) if resume and record_path.exists() else None
    reused = earlier is not None and earlier.get("key") == key
    if reused:
        clock.wall.update(earlier["wall_s"])
        clock.cpu.update(earlier["cpu_s"])
    else:
        if workdir.exists():
            shutil.rmtree(workdir)
        if trained_in is not None:
            shutil.copytree(trained_in, workdir, symlinks=True, ignore=shutil.ignore_patterns("metrics", "plots"))
            earlier = json.loads((trained_in / RUN_RECORD).read_text())
            clock.wall.update(validate=0.0, featurize=0.0, train=0.0)
            clock.cpu.update(validate=0.0, featurize=0.0, train=0.0)
        else:
            workdir.mkdir(parents=True)
            os.symlink(feature_store.resolve(), workdir / "feature_store", target_is_directory=True)
            clock.run("validate", stage("validate").run, run)
            feat = clock.run("featurize", stage("featurize").run, run)
            trained = clock.run("train", stage("train").run, run)
            earlier = {"featurize": feat, "train": trained}
        earlier = {**earlier, "key": key, "wall_s": dict(clock.wall), "cpu_s": dict(clock.cpu)}
        atomic.write_text(record_path, json.dumps(earlier, default=str))
    metrics = clock.run("evaluate", stage("evaluate").run, run)
    return figures(metrics, earlier["featurize"], earlier["train"], clock, wd) | {
        "evaluate_only": trained_in is not None, "reused": reused}


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
        "novelty": metrics.get("novelty"),  # None when the anomaly head is off
        "gate": metrics["gate"],
        "n_labelled": trained["n_labelled"], "n_fail": trained["n_fail"], "n_oof": int(len(oof)),
        "featurizer_id": feat["featurizer_id"], "device": feat["device"],
        "featurize": {k: feat[k] for k in ("n_computed", "n_cached", "images_per_s")},
        "wall_s": clock.wall, "cpu_s": clock.cpu,
        "workdir": str(wd.root),
    }
