"""A model trained with `anomaly.as_feature: true` (the anomaly score is the booster's last column)
scores everywhere: the registered pyfunc (ONNX Runtime and torch extractors) and the split edge bundle.

The model is built the way the train stage builds its final model (`AnomalyCV.fit` on every
labelled image, `WindowAnomaly.features`, `WindowAnomaly.save`) from the defect model's backbone
and images; the reference probabilities are the booster on the train stage's features of those images.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.defect_model import (
    DEFECT_MODEL_NAME,
    IMAGE_SIZE,
    LGBM,
    _threshold_between_scores,
    register_with_head,
)

LAYER = "features.10"
# pyfunc (ONNX Runtime features and patches) vs the booster on the train stage's torch features:
# same as the plain model's graph-vs-pyfunc tolerance (tests/unit/test_edge_export.py).
PYFUNC_ATOL = 1e-5
# split bundle vs pyfunc (issue 12: the edge graph's parity with the pyfunc).
BUNDLE_ATOL = 1e-4


@dataclass(frozen=True)
class AsFeatureModel:
    model_uri: str
    tracking_uri: str
    artifacts: Path  # what registry.register logs (the folder `defectflow explain --model` also takes)
    images: list[Path]
    reference: np.ndarray  # fail probabilities of the booster on the train stage's features of `images`
    threshold: float


@pytest.fixture(scope="module")
def as_feature_model(defect_model, tmp_path_factory) -> AsFeatureModel:
    import mlflow

    from defectflow.anomaly.cv import AnomalyCV
    from defectflow.anomaly.store import PatchStore
    from defectflow.anomaly.taps import patch_batches
    from defectflow.features.extract import FeatureExtractor
    from defectflow.hashing import sha256_file
    from defectflow.params import AnomalyParams
    from defectflow.training.booster import fit_booster, lgbm_params

    root = tmp_path_factory.mktemp("as_feature_model")
    mlflow.set_tracking_uri(defect_model.tracking_uri)
    mlflow.set_registry_uri(defect_model.tracking_uri)
    source = mlflow.pyfunc.load_model(defect_model.model_uri).unwrap_python_model()
    images = defect_model.images
    data = next(d for d in images[0].parents if (d / "labels.csv").is_file())
    with open(data / "labels.csv", newline="") as fh:
        label_of = {data / r["image"]: r["label"] for r in csv.DictReader(fh)}
    y = np.array([label_of[p] == "fail" for p in images], dtype=np.int8)

    # The featurize stage's one pass (torch engine): features and patch vectors into the stores.
    spec = source.extractor.spec
    extractor = FeatureExtractor(source.backbone, spec, device="cpu", batch_size=16, num_workers=0)
    feats, patches = zip(*((f, p) for _, f, p in patch_batches(extractor, LAYER, images)), strict=True)
    X = np.concatenate(feats).astype(np.float32)
    shas = np.array([sha256_file(p) for p in images])
    store = PatchStore(root / "feature_store", spec.featurizer_id, LAYER)
    store.put_many(list(shas), np.concatenate(patches))

    # The train stage's final model: head on every pass image, booster on features + cross-fitted scores.
    params = AnomalyParams(layer=LAYER, method="padim", cross_fit=3, as_feature=True, novelty_quantile=0.9)
    head = AnomalyCV(store, shas, np.array([p.stem for p in images]), params, seed=5).fit(np.arange(len(y)), y)
    X_train = head.features(X, np.arange(0))[0]
    assert X_train.shape == (len(y), spec.dim + 1)
    booster = fit_booster(X_train, y, LGBM, 5)
    assert booster.feature_importance("split")[-1] > 0, "the booster must use the anomaly score for this test"
    rounds = lgbm_params(LGBM, 5)[1]
    # What the train stage's booster gets for these images as new rows: their scores under the shipped head.
    rows = np.arange(len(y))
    reference = booster.predict(head.features(X, rows)[0], num_iteration=rounds)
    threshold = _threshold_between_scores(reference)

    head.save(root / "anomaly.npz", LAYER, IMAGE_SIZE)
    uri = register_with_head(root, source.backbone, booster.model_to_string(),
                             {**source.spec, "num_boost_round": rounds, "threshold": threshold},
                             f"{DEFECT_MODEL_NAME}-as-feature")
    return AsFeatureModel(uri, defect_model.tracking_uri, root, images, reference, threshold)


@pytest.fixture(scope="module")
def as_feature_bundle(as_feature_model, tmp_path_factory) -> Path:
    from defectflow.registry.export import export_bundle

    out = tmp_path_factory.mktemp("as_feature_edge") / "bundle"
    export_bundle(as_feature_model.model_uri, out, tracking_uri=as_feature_model.tracking_uri)
    return out


def _pyfunc(model: AsFeatureModel):
    import mlflow

    mlflow.set_tracking_uri(model.tracking_uri)
    return mlflow.pyfunc.load_model(model.model_uri)


def test_the_pyfunc_scores_the_images_it_was_trained_on_like_the_train_stage(as_feature_model):
    pyfunc = _pyfunc(as_feature_model)
    got = pyfunc.predict(pd.DataFrame({"image": [str(p) for p in as_feature_model.images]}))
    diff = np.abs(got["fail_probability"].to_numpy() - as_feature_model.reference)
    print(f"pyfunc ({pyfunc.unwrap_python_model().extractor.device_name}) vs train-stage booster over "
          f"{len(diff)} images: max |dp| = {diff.max():.2e}")
    assert diff.max() <= PYFUNC_ATOL
    classifier = np.where(as_feature_model.reference >= as_feature_model.threshold, "fail", "pass")
    assert {"pass", "fail"} <= set(classifier)
    # The head is there, so the novelty rule decides too: it only ever turns a classifier pass into fail/novel.
    assert list(got["decision"]) == ["fail" if r == "novel" else c for r, c in zip(got["reason"], classifier,
                                                                                    strict=True)]
    assert [r == "classifier" for r in got["reason"]] == list(classifier == "fail")


def test_the_pyfunc_scores_with_the_torch_extractor_too(as_feature_model):
    """On CUDA the pyfunc's extractor is torch's: the head then reads the forward hook's patches."""
    from defectflow.features.extract import FeatureExtractor

    classifier = _pyfunc(as_feature_model).unwrap_python_model()
    classifier.extractor = FeatureExtractor(classifier.backbone, classifier.extractor.spec, device="cpu",
                                            batch_size=7, num_workers=0)
    got = classifier.predict(None, [str(p) for p in as_feature_model.images[:10]])
    np.testing.assert_allclose(got["fail_probability"], as_feature_model.reference[:10], rtol=0, atol=PYFUNC_ATOL)


def test_defectflow_explain_scores_like_the_train_stage(as_feature_model):
    from defectflow.anomaly.explain import Explainer

    explained = Explainer.from_artifacts(as_feature_model.artifacts).explain([str(p) for p in as_feature_model.images])
    np.testing.assert_allclose([e.fail_probability for e in explained], as_feature_model.reference, rtol=0,
                               atol=PYFUNC_ATOL)


def test_the_score_column_matters(as_feature_model):
    """The check has teeth: the same features with the score column zeroed predict otherwise."""
    classifier = _pyfunc(as_feature_model).unwrap_python_model()
    X, _ = classifier.booster_features([str(p) for p in as_feature_model.images])
    assert X.shape[1] == classifier.extractor.spec.dim + 1 and (X[:, -1] > 0).all()
    X[:, -1] = 0.0
    p = classifier.booster.predict(X, num_iteration=classifier.spec["num_boost_round"])
    assert np.abs(p - as_feature_model.reference).max() > 1e-3


def test_the_split_bundle_scores_and_explains_like_the_pyfunc(as_feature_model, as_feature_bundle):
    from defectflow.inference.bundle import EdgeModel
    from defectflow.inference.bundle_manifest import TREES_NAME, EdgeManifest

    manifest = EdgeManifest.read(as_feature_bundle)
    assert manifest.format_version == 2 and manifest.anomaly is not None and manifest.anomaly["as_feature"]
    assert manifest.trees is not None and manifest.trees["n_features"] == manifest.feature_dim + 1
    assert manifest.parity_max_abs_diff is not None and manifest.parity_max_abs_diff <= BUNDLE_ATOL
    assert sorted(p.name for p in as_feature_bundle.iterdir()) == ["anomaly.npz", "manifest.json", "model.onnx",
                                                                   TREES_NAME]
    expected = _pyfunc(as_feature_model).predict(pd.DataFrame({"image": [str(p) for p in as_feature_model.images]}))
    model = EdgeModel(as_feature_bundle)
    got = model.predict_paths(as_feature_model.images)
    diff = np.abs(np.array([g.fail_probability for g in got]) - expected["fail_probability"].to_numpy())
    print(f"split bundle vs pyfunc over {len(got)} images: max |dp| = {diff.max():.2e}")
    assert diff.max() <= BUNDLE_ATOL
    assert [(g.decision, g.reason) for g in got] == list(zip(expected["decision"], expected["reason"], strict=True))
    explained = model.explain_decoded([model.decode(p.read_bytes()) for p in as_feature_model.images[:4]])
    for (pred, why), plain in zip(explained, got[:4], strict=True):
        assert pred == plain and why.anomaly_score > 0 and why.overlay_png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_split_bundle_without_its_trees_graph_is_refused(as_feature_bundle, tmp_path):
    from defectflow.inference.bundle import EdgeModel
    from defectflow.inference.bundle_manifest import TREES_NAME, BundleError

    copy = tmp_path / "bundle"
    shutil.copytree(as_feature_bundle, copy)
    (copy / TREES_NAME).unlink()
    with pytest.raises(BundleError, match=f"{TREES_NAME} is missing"):
        EdgeModel(copy)


def test_format_version_1_bundles_still_load(edge_bundle, defect_model, tmp_path):
    """Bundles exported before the split (format_version 1, one graph) score as they did."""
    from defectflow.inference.bundle import EdgeModel
    from defectflow.inference.bundle_manifest import MANIFEST_NAME

    copy = tmp_path / "bundle"
    shutil.copytree(edge_bundle, copy)
    raw = json.loads((copy / MANIFEST_NAME).read_text())
    raw.pop("trees")
    (copy / MANIFEST_NAME).write_text(json.dumps({**raw, "format_version": 1}))
    images = defect_model.images[:4]
    assert EdgeModel(copy).predict_paths(images) == EdgeModel(edge_bundle).predict_paths(images)
