"""Training with LightGBM's distributed learner on a Dask LocalCluster gives the same folds, the
same gate verdict and AUCs within a stated tolerance of the local path."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.fixtures.dask_cluster import SEED

pytestmark = pytest.mark.integration

# Data-parallel LightGBM bins each feature from one worker's rows, bags rows per worker and sums
# histograms over the network, so its trees differ from a single-machine fit. Measured on this
# machine (240 images, 3 folds of ~60 test images), two runs: fold AUCs local .693/.668/.705 vs
# Dask .693/.687/.751 (mean diff 0.022, worst fold 0.046), and local .769/.725/.750 vs Dask
# .769/.729/.743 (mean diff 0.001, worst fold 0.006). Fold 1 is small enough to train on one
# worker, hence identical. The AUC of ~60 test images itself has a standard error near 0.07, so
# these bounds say "as good as the local model", not "the same trees".
MEAN_AUC_TOLERANCE = 0.05
FOLD_AUC_TOLERANCE = 0.08


def trained(dask_featurized, dest, executor):
    from defectflow.distributed.train_dask import booster_fitter
    from defectflow.evaluation.stage import evaluate
    from defectflow.params import EvaluateParams, GateParams, Params, TrainParams
    from defectflow.training.stage import train
    from defectflow.workdir import Workdir

    params = Params.load("params.yaml", ["train.n_folds=3", "train.min_train=30", "train.min_test=20",
                                         "train.lgbm.n_estimators=150", "gate.min_auc=0.6", "gate.min_fold_auc=0.5"])
    workdir = Workdir(dest)
    dest.mkdir(parents=True)
    source = Workdir(dask_featurized.workdir)
    for path in (source.manifest, source.features, source.features_spec):
        shutil.copy(path, dest / path.name)
    with booster_fitter(executor) as fit:
        summary = train(workdir, params.section("train", TrainParams), SEED, fit=fit)
    metrics = evaluate(workdir, params.section("evaluate", EvaluateParams), params.section("gate", GateParams))
    return summary, metrics, workdir


def test_dask_training_matches_local(dask_featurized, tmp_path):
    from defectflow.params import ExecutorParams

    cluster = ExecutorParams(kind="local_cluster", n_workers=2, threads_per_worker=1)
    local, local_metrics, local_dir = trained(dask_featurized, tmp_path / "local", None)
    dask, dask_metrics, dask_dir = trained(dask_featurized, tmp_path / "dask", cluster)

    split_keys = ("fold", "n_train", "n_fit", "n_val", "n_test")
    assert ([{k: r[k] for k in split_keys} for r in dask["folds"]]
            == [{k: r[k] for k in split_keys} for r in local["folds"]])
    local_aucs = [f["auc"] for f in local_metrics["folds"]]
    dask_aucs = [f["auc"] for f in dask_metrics["folds"]]
    print(f"\nfold AUC local {local_aucs} dask {dask_aucs}; mean {local_metrics['mean_auc']:.4f} vs "
          f"{dask_metrics['mean_auc']:.4f}; rounds {[r['best_iteration'] for r in local['folds']]} vs "
          f"{[r['best_iteration'] for r in dask['folds']]}")
    assert local_metrics["mean_auc"] > 0.6  # a model that learned something, so agreement means something
    assert abs(dask_metrics["mean_auc"] - local_metrics["mean_auc"]) <= MEAN_AUC_TOLERANCE
    assert max(abs(a - b) for a, b in zip(dask_aucs, local_aucs, strict=True)) <= FOLD_AUC_TOLERANCE
    assert dask_metrics["gate"]["passed"] == local_metrics["gate"]["passed"]
    spec = json.loads((dask_dir.model_dir / "spec.json").read_text())
    assert spec["num_boost_round"] == dask["final_rounds"] and (dask_dir.model_dir / "booster.txt").stat().st_size > 0
