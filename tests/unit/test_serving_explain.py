"""POST /v1/predict?explain=true: the anomaly head in the edge bundle, through the HTTP API
(FastAPI TestClient, real ONNX bundles with and without the head)."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from defectflow.inference.bundle import EdgeModel
from defectflow.inference.bundle_manifest import BundleError, EdgeManifest
from defectflow.serving.app import create_app
from defectflow.serving.settings import ServingSettings

API_KEY = "test-key-explain"
AUTH = {"X-API-Key": API_KEY}
# Anomaly scores from the edge graph vs the torch hook + the same head (numpy vs torch input scaling).
SCORE_RTOL = 1e-3


def _client(bundle) -> Iterator[TestClient]:
    app = create_app(ServingSettings(model_dir=bundle, api_key=API_KEY))
    with TestClient(app) as client:
        app.state.model_slot.wait(60)
        yield client


@pytest.fixture
def explaining(anomaly_edge_bundle) -> Iterator[TestClient]:
    yield from _client(anomaly_edge_bundle.bundle)


@pytest.fixture
def plain(edge_bundle) -> Iterator[TestClient]:
    yield from _client(edge_bundle)


def _post(client: TestClient, path, query: str = "?explain=true"):
    return client.post(f"/v1/predict{query}", files={"file": (path.name, path.read_bytes(), "image/png")},
                       headers=AUTH)


def _torch_scores(bundle, paths) -> np.ndarray:
    """The head's image scores on the torch backbone's hooked patches: what `defectflow explain` computes."""
    import mlflow

    from defectflow.anomaly.maps import image_scores
    from defectflow.anomaly.models import load_model
    from defectflow.anomaly.taps import PatchTap
    from defectflow.features.extract import FeatureExtractor

    classifier = mlflow.pyfunc.load_model(bundle.model_uri).unwrap_python_model()
    head, meta = load_model(classifier.anomaly_head)
    extractor = FeatureExtractor(classifier.backbone, classifier.extractor.spec, "cpu", 16, 0)
    with PatchTap(extractor.model, meta["layer"]) as tap:
        patches = np.concatenate([tap.take(len(f)) for _, f in extractor.batches([str(p) for p in paths])])
    return image_scores(head.patch_scores(patches.astype(np.float32)))


def test_explain_returns_the_decision_the_anomaly_score_and_an_overlay(explaining, anomaly_edge_bundle,
                                                                       defect_model):
    import mlflow

    mlflow.set_tracking_uri(defect_model.tracking_uri)
    paths = defect_model.images[:6]
    reference = _torch_scores(anomaly_edge_bundle, paths)
    size = EdgeModel(anomaly_edge_bundle.bundle).manifest.image_size
    reasons = set()
    for path, expected_score in zip(paths, reference, strict=True):
        plain_body = _post(explaining, path, query="").json()
        resp = _post(explaining, path)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert plain_body["explanation"] is None
        assert {k: body[k] for k in ("fail_probability", "decision", "reason")} == \
            {k: plain_body[k] for k in ("fail_probability", "decision", "reason")}
        why = body["explanation"]
        assert why["anomaly_score"] == pytest.approx(expected_score, rel=SCORE_RTOL)
        assert why["novelty_threshold"] == pytest.approx(anomaly_edge_bundle.novelty_threshold)
        assert why["novel"] == (why["anomaly_score"] > why["novelty_threshold"])
        flagged = body["fail_probability"] >= body["threshold"]
        expected_reason = "classifier" if flagged else "novel" if why["novel"] else "normal"
        assert why["review_reason"] == body["reason"] == expected_reason
        assert body["decision"] == ("pass" if expected_reason == "normal" else "fail")
        reasons.add(expected_reason)
        overlay = Image.open(io.BytesIO(base64.b64decode(why["overlay_png_base64"])))
        assert overlay.format == "PNG" and overlay.size == (size, size) and overlay.mode == "RGB"


def test_model_info_says_whether_the_model_can_explain(explaining, plain):
    assert explaining.get("/v1/model").json()["explainable"] is True
    assert plain.get("/v1/model").json()["explainable"] is False


def test_explain_on_a_model_without_the_anomaly_head_is_a_clear_409(plain, defect_model):
    resp = _post(plain, defect_model.images[0])
    assert resp.status_code == 409
    body = resp.json()
    assert body["error"] == "no_anomaly_head" and "anomaly.enabled=true" in body["detail"]
    assert _post(plain, defect_model.images[0], query="?explain=false").status_code == 200


def test_bad_uploads_are_refused_the_same_way_with_explain(explaining):
    resp = explaining.post("/v1/predict?explain=true", files={"file": ("x.png", b"not pixels", "image/png")},
                           headers=AUTH)
    assert resp.status_code == 415 and resp.json()["error"] == "not_an_image"


def test_the_bundle_carries_the_head_and_its_checksum(anomaly_edge_bundle, tmp_path):
    import shutil

    manifest = EdgeManifest.read(anomaly_edge_bundle.bundle)
    assert manifest.anomaly["file"] == "anomaly.npz" and manifest.anomaly["output"] == "patches-features.10"
    copy = tmp_path / "bundle"
    shutil.copytree(anomaly_edge_bundle.bundle, copy)
    (copy / "anomaly.npz").write_bytes((copy / "anomaly.npz").read_bytes() + b"\0")
    with pytest.raises(BundleError, match="anomaly.npz has sha256"):
        EdgeModel(copy)


def test_the_service_explains_without_torch_scipy_matplotlib_or_pandas(anomaly_edge_bundle, defect_model):
    """The serving container has none of them: the explain path must not import them."""
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {{'torch', 'torchvision', 'scipy', 'matplotlib', 'pandas', 'lightgbm', 'mlflow'}}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from defectflow.inference.bundle import EdgeModel
model = EdgeModel({str(anomaly_edge_bundle.bundle)!r})
[(pred, why)] = model.explain_decoded([model.decode(open({str(defect_model.images[0])!r}, 'rb').read())])
import defectflow.serving.app
print(why.review_reason, len(why.overlay_png) > 100)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[1] == "True"
