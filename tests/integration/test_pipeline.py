"""End to end: the CLI stages and `defectflow pipeline`, their outputs, the gate, and the
registered pyfunc scoring images in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.pipeline import FAST_OVERRIDES

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).with_name("defectflow"))


def run_cli(*args: str, tracking_uri: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=600)


def sets(*extra: str) -> list[str]:
    return [arg for item in (*FAST_OVERRIDES, *extra) for arg in ("--set", item)]


def test_cv_metrics_are_consistent_with_the_out_of_fold_predictions(trained_pipeline):
    from sklearn.metrics import roc_auc_score

    work = trained_pipeline.workdir
    metrics = json.loads((work / "metrics" / "cv.json").read_text())
    oof = pd.read_parquet(work / "cv" / "oof.parquet")
    assert [f["fold"] for f in metrics["folds"]] == [1, 2, 3]
    for fold in metrics["folds"]:
        part = oof[oof["fold"] == fold["fold"]]
        assert fold["auc"] == pytest.approx(roc_auc_score(part["y"], part["p_fail"]), abs=1e-6)
        assert fold["n_test"] == len(part) and fold["test_start"] <= fold["test_end"]
    assert metrics["mean_auc"] == pytest.approx(np.mean([f["auc"] for f in metrics["folds"]]), abs=1e-6)
    flagged = oof["p_fail"] >= metrics["threshold"]
    assert flagged[oof["y"] == 1].mean() >= metrics["target_fail_recall"]
    assert metrics["review_reduction"] == pytest.approx((~flagged).mean(), abs=1e-6)
    assert metrics["gate"]["passed"] == (metrics["mean_auc"] >= 0.6 and metrics["min_auc"] >= 0.5)
    assert [f["fold"] for f in metrics["forward"]] == [2, 3]
    for fold in metrics["folds"]:
        assert fold["auc_ci95"][0] <= fold["auc"] <= fold["auc_ci95"][1]
        assert fold["rounds_used"] >= max(fold["best_iteration"], 50)
    for plot in ("roc.png", "auc_over_time.png", "review_tradeoff.png", "forward_recall.png"):
        assert (work / "plots" / plot).stat().st_size > 1000
    registered = json.loads((work / "registered.json").read_text())
    assert registered["version"] == trained_pipeline.version


def test_registered_model_scores_images_in_a_fresh_process(trained_pipeline, tmp_path):
    """Stock mlflow.pyfunc.load_model on models:/<name>@challenger, in a process that never
    imported defectflow: the model brings its own code."""
    images = sorted(trained_pipeline.data_dir.rglob("*.png"))[:12]
    script = tmp_path / "score.py"
    script.write_text(
        "import json, sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({trained_pipeline.tracking_uri!r})\n"
        f"m = mlflow.pyfunc.load_model({trained_pipeline.challenger_uri!r})\n"
        "paths = json.loads(sys.argv[1])\n"
        "out = m.predict(pd.DataFrame({'image': paths}))\n"
        "raw = m.predict([open(paths[0], 'rb').read()])\n"
        "print(json.dumps({'p': out['fail_probability'].tolist(), 'd': out['decision'].tolist(),\n"
        "                  'r': out['reason'].tolist(),\n"
        "                  'bytes_p': float(raw['fail_probability'][0]), "
        "'defectflow' : 'defectflow' in sys.modules}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(script), json.dumps([str(p) for p in images])], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    threshold = json.loads((trained_pipeline.workdir / "metrics" / "cv.json").read_text())["threshold"]
    p = np.array(result["p"])
    assert ((p >= 0) & (p <= 1)).all()
    # The model has the anomaly head, so the novelty rule decides too (it can only add fails, reason novel).
    assert result["r"] == ["classifier" if v >= threshold else r if r == "novel" else "normal"
                           for v, r in zip(p, result["r"], strict=True)]
    assert result["d"] == ["fail" if v >= threshold or r == "novel" else "pass" for v, r in zip(p, result["r"],
                                                                                                strict=True)]
    assert result["bytes_p"] == pytest.approx(p[0], abs=1e-6)  # bytes and paths give the same answer

    # The pyfunc must agree with the trained booster on the stored features of the same images.
    import lightgbm as lgb

    from defectflow.hashing import sha256_file

    features = pd.read_parquet(trained_pipeline.workdir / "features.parquet").set_index("sha256")
    spec = json.loads((trained_pipeline.workdir / "model" / "spec.json").read_text())
    booster = lgb.Booster(model_file=str(trained_pipeline.workdir / "model" / "booster.txt"))
    X = features.loc[[sha256_file(i) for i in images]].to_numpy(np.float32)
    np.testing.assert_allclose(p, booster.predict(X, num_iteration=spec["num_boost_round"]), atol=1e-4)


def test_each_stage_alone_then_a_failing_gate(pipeline_dataset, tmp_path):
    work = tmp_path / "work"
    common = ["--workdir", str(work), *sets(f"register.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}")]
    for stage in ("validate", "featurize", "train", "evaluate", "register"):
        data = ["--data", str(pipeline_dataset)] if stage in {"validate", "featurize", "register"} else []
        proc = run_cli(stage, *data, *common, "--json")
        # The fast settings pass their (lowered) gate on this dataset, as the session's trained
        # pipeline shows: every stage, register included, must succeed.
        assert proc.returncode == 0, f"{stage}: {proc.stderr[-2000:]}"
    registered = json.loads(proc.stdout)
    assert registered["run_id"] and registered["gate_passed"] is True and registered["version"] == "1"

    # A perfect mean AUC is out of reach on this noisy data (1 % flipped labels): the gate must refuse.
    proc = run_cli("pipeline", "--data", str(pipeline_dataset), *common, "--set", "gate.min_auc=1.0", "--json")
    assert proc.returncode == 4
    assert "gate failed" in proc.stderr and "gate.min_auc" in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["featurize"]["n_computed"] == 0  # the stage-by-stage run filled the cache
    assert summary["evaluate"]["gate"]["passed"] is False and summary["register"]["version"] is None


def test_missing_inputs_say_which_stage_to_run(tmp_path):
    proc = run_cli("train", "--workdir", str(tmp_path / "empty"))
    assert proc.returncode == 1 and "run `defectflow validate` first" in proc.stderr
    assert "Traceback" not in proc.stderr
