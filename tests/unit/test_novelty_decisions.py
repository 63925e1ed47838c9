"""The novelty rule decides in production: an image the classifier passes but whose anomaly score is
above the head's novelty threshold comes back fail/novel from the edge runtime, the service's plain
predict and batch routes, the pyfunc and batch scoring into the results DB; a model without the head
decides exactly as before. Real ONNX bundles and a real registered pyfunc, no mocks."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from defectflow.inference.bundle import EdgeModel
from defectflow.scoring.batch import score
from defectflow.scoring.results import Score, open_results
from defectflow.serving.app import create_app
from defectflow.serving.settings import ServingSettings

API_KEY = "test-key-novelty"
AUTH = {"X-API-Key": API_KEY}
# The pyfunc's anomaly scores (ONNX Runtime extractor + the head) vs the bundle's: an image this close
# to the novelty threshold may fall either side of it (docs/serving.md: scores agree within 1e-3).
SCORE_RTOL = 1e-3


@dataclass(frozen=True)
class NovelCase:
    bundle: Path              # the anomaly bundle with its novelty threshold lowered
    novel: Path               # the classifier passes it; only the lowered threshold calls it novel
    passed: list[Path]        # the classifier passes them and they stay under the lowered threshold
    flagged: list[Path]       # the classifier flags them


@pytest.fixture(scope="module")
def novel_case(anomaly_edge_bundle, defect_model, tmp_path_factory) -> NovelCase:
    """The anomaly bundle, copied with its novelty threshold just under the anomaly score of the most
    unusual image the classifier passes (and above every other passed image's): that image is `novel`."""
    model = EdgeModel(anomaly_edge_bundle.bundle)
    images = defect_model.images
    explained = model.explain_decoded([model.decode(p.read_bytes()) for p in images])
    passed = [(why.anomaly_score, p) for p, (pred, why) in zip(images, explained, strict=True)
              if pred.fail_probability < model.manifest.threshold]
    flagged = [p for p, (pred, _) in zip(images, explained, strict=True)
               if pred.fail_probability >= model.manifest.threshold]
    assert len(passed) >= 2 and flagged, "the fixture model should pass some images and flag others"
    passed.sort()
    (second, _), (top, novel) = passed[-2], passed[-1]
    assert top - second > 1e-3 * top, "two passed images score alike: the lowered threshold would be fragile"
    bundle = tmp_path_factory.mktemp("novel_bundle") / "bundle"
    shutil.copytree(anomaly_edge_bundle.bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["anomaly"]["novelty_threshold"] = (top + second) / 2
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return NovelCase(bundle, novel, [p for _, p in passed[:-1]], flagged)


@pytest.fixture
def service(novel_case) -> Iterator[TestClient]:
    app = create_app(ServingSettings(model_dir=novel_case.bundle, api_key=API_KEY))
    with TestClient(app) as client:
        app.state.model_slot.wait(60)
        yield client


def _upload(path: Path) -> tuple[str, bytes, str]:
    return path.name, path.read_bytes(), "image/png"


def test_the_edge_runtime_sends_a_novel_image_the_classifier_passes_to_review(novel_case):
    model = EdgeModel(novel_case.bundle)
    [novel] = model.predict_paths([novel_case.novel])
    assert novel.fail_probability < model.manifest.threshold
    assert (novel.decision, novel.reason) == ("fail", "novel")
    assert {(p.decision, p.reason) for p in model.predict_paths(novel_case.passed)} == {("pass", "normal")}
    assert {(p.decision, p.reason) for p in model.predict_paths(novel_case.flagged)} == {("fail", "classifier")}
    frame = model.predict(pd.DataFrame({"image": [str(novel_case.novel)]}))
    assert frame.to_dict("records")[0] | {"fail_probability": 0} == {"fail_probability": 0, "decision": "fail",
                                                                     "reason": "novel"}


def test_the_service_says_fail_novel_without_being_asked_to_explain(service, novel_case):
    body = service.post("/v1/predict", files={"file": _upload(novel_case.novel)}, headers=AUTH).json()
    assert body["fail_probability"] < body["threshold"]
    assert (body["decision"], body["reason"], body["explanation"]) == ("fail", "novel", None)
    explained = service.post("/v1/predict?explain=true", files={"file": _upload(novel_case.novel)},
                             headers=AUTH).json()
    assert (explained["decision"], explained["reason"]) == ("fail", "novel")
    assert explained["explanation"]["review_reason"] == "novel" and explained["explanation"]["novel"] is True

    files = [("files", _upload(p)) for p in (novel_case.novel, novel_case.passed[0], novel_case.flagged[0])]
    results = service.post("/v1/predict/batch", files=files, headers=AUTH).json()["results"]
    assert [(r["decision"], r["reason"]) for r in results] == [("fail", "novel"), ("pass", "normal"),
                                                              ("fail", "classifier")]
    metrics = service.get("/metrics").text
    assert 'defectflow_predictions_total{decision="fail",reason="novel"} 3.0' in metrics
    assert 'defectflow_predictions_total{decision="fail",reason="classifier"} 1.0' in metrics
    assert 'defectflow_predictions_total{decision="pass",reason="normal"} 1.0' in metrics


def test_batch_scoring_stores_the_novelty_rules_fail(novel_case, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in (novel_case.novel, novel_case.passed[0], novel_case.flagged[0]):
        shutil.copy(path, folder / path.name)
    results = f"sqlite:///{tmp_path / 'results.db'}"
    summary = score(str(folder), str(novel_case.bundle), results, batch_size=2, blob_cache=tmp_path / "cache",
                    progress=False)
    assert summary["scored"] == 3
    engine = open_results(results)
    with Session(engine) as session:
        stored = {s.image: (s.decision, s.probability) for s in session.scalars(sa.select(Score))}
    engine.dispose()
    threshold = EdgeModel(novel_case.bundle).manifest.threshold
    decision, probability = stored[novel_case.novel.name]
    assert decision == "fail" and probability < threshold  # how the dashboard tells it was the novelty rule
    assert stored[novel_case.passed[0].name][0] == "pass" and stored[novel_case.flagged[0].name][0] == "fail"


def test_the_pyfunc_applies_the_rule_like_the_bundle(anomaly_edge_bundle, defect_model):
    """The registered model with the head (not as_feature) decides like its bundle, reasons included."""
    import mlflow

    mlflow.set_tracking_uri(defect_model.tracking_uri)
    got = mlflow.pyfunc.load_model(anomaly_edge_bundle.model_uri).predict(
        pd.DataFrame({"image": [str(p) for p in defect_model.images]}))
    model = EdgeModel(anomaly_edge_bundle.bundle)
    explained = model.explain_decoded([model.decode(p.read_bytes()) for p in defect_model.images])
    threshold = anomaly_edge_bundle.novelty_threshold
    clear = [abs(why.anomaly_score - threshold) > SCORE_RTOL * threshold for _, why in explained]
    assert sum(clear) >= len(clear) - 2
    expected = [(pred.decision, pred.reason) for pred, _ in explained]
    pairs = list(zip(got["decision"], got["reason"], strict=True))
    assert [p for p, c in zip(pairs, clear, strict=True) if c] == [e for e, c in zip(expected, clear, strict=True) if c]
    assert "novel" in {r for _, r in expected}, "the fixture head (0.9 quantile) should call some image novel"


def test_a_model_without_the_head_decides_as_before(edge_bundle, defect_model):
    """No head: the graph's is_fail alone, reason classifier or normal; the pyfunc the same."""
    import mlflow

    model = EdgeModel(edge_bundle)
    preds = model.predict_paths(defect_model.images)
    threshold = model.manifest.threshold
    assert [(p.decision, p.reason) for p in preds] == [
        ("fail", "classifier") if p.fail_probability >= threshold else ("pass", "normal") for p in preds]
    mlflow.set_tracking_uri(defect_model.tracking_uri)
    got = mlflow.pyfunc.load_model(defect_model.model_uri).predict(
        pd.DataFrame({"image": [str(p) for p in defect_model.images]}))
    assert list(got["reason"]) == [p.reason for p in preds]
    assert np.array_equal(got["decision"] == "fail", got["fail_probability"] >= threshold)
