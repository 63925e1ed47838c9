"""The scoring service through its HTTP API (FastAPI TestClient, real ONNX bundle)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from defectflow.inference.bundle import EdgeModel
from defectflow.serving.app import create_app
from defectflow.serving.settings import ServingSettings

API_KEY = "test-key-7f3a"
AUTH = {"X-API-Key": API_KEY}


def _client(settings: ServingSettings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as client:
        app.state.model_slot.wait(60)
        yield client


@pytest.fixture
def client(edge_bundle) -> Iterator[TestClient]:
    yield from _client(ServingSettings(model_dir=edge_bundle, api_key=API_KEY, max_request_bytes=2_000_000,
                                       max_image_bytes=1_000_000, max_pixels=1_000_000, max_batch=8))


def png(size: tuple[int, int] = (80, 80), seed: int = 0, solid: bool = False) -> bytes:
    """Noise (incompressible) or one solid colour (a tiny file whatever its pixel count)."""
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    (Image.new("RGB", size, (90, 120, 60)) if solid else Image.fromarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def test_probes_and_model_info(client, edge_bundle):
    assert client.get("/healthz").json() == {"status": "ok", "detail": None}
    assert client.get("/readyz").json()["status"] == "ready"
    info = client.get("/v1/model").json()
    manifest = EdgeModel(edge_bundle).manifest
    assert info["version"] == manifest.model_version and info["threshold"] == pytest.approx(manifest.threshold)
    assert "mean_auc" in info["metrics"]


def test_predict_matches_the_edge_runtime(client, edge_bundle, defect_model):
    path = defect_model.images[0]
    resp = client.post("/v1/predict", files={"file": (path.name, path.read_bytes(), "image/png")}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    [expected] = EdgeModel(edge_bundle).predict_paths([path])
    assert body["fail_probability"] == pytest.approx(expected.fail_probability, abs=1e-6)
    assert body["decision"] == expected.decision and body["filename"] == path.name
    assert body["reason"] == expected.reason == ("classifier" if expected.decision == "fail" else "normal")


def test_batch_scores_good_images_and_reports_bad_ones_in_place(client, defect_model):
    good = defect_model.images[:3]
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in good]
    files.insert(1, ("files", ("notes.txt", b"not an image", "text/plain")))
    resp = client.post("/v1/predict/batch", files=files, headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["n_scored"], body["n_rejected"]) == (3, 1)
    assert body["results"][1] | {"detail": None} == {"filename": "notes.txt", "fail_probability": None,
                                                     "decision": None, "reason": None, "error": "not_an_image",
                                                     "detail": None}
    assert [r["filename"] for r in body["results"]] == [good[0].name, "notes.txt", good[1].name, good[2].name]


@pytest.mark.parametrize(("headers", "error"), [({}, "missing_api_key"), ({"X-API-Key": "wrong"}, "invalid_api_key")])
def test_prediction_routes_need_the_api_key(client, headers, error):
    for route, field in (("/v1/predict", "file"), ("/v1/predict/batch", "files")):
        resp = client.post(route, files={field: ("a.png", png(), "image/png")}, headers=headers)
        assert resp.status_code == 401 and resp.json()["error"] == error
        assert API_KEY not in resp.text


def test_auth_can_be_turned_off(edge_bundle):
    for c in _client(ServingSettings(model_dir=edge_bundle, auth_enabled=False)):
        assert c.post("/v1/predict", files={"file": ("a.png", png(), "image/png")}).status_code == 200


@pytest.mark.parametrize(("payload", "status", "error"), [
    (b"%PDF-1.4 definitely not pixels", 415, "not_an_image"),
    (png()[:300], 422, "truncated"),
    (b"", 422, "zero_byte"),
    (png((1100, 1000), solid=True), 413, "decompression_bomb"),
], ids=["not-image", "truncated", "empty", "too-many-pixels"])
def test_bad_uploads_get_a_specific_4xx(client, payload, status, error):
    resp = client.post("/v1/predict", files={"file": ("x.png", payload, "image/png")}, headers=AUTH)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == error and "x.png" in resp.json()["detail"]


def test_oversized_file_and_body_are_refused_before_scoring(client):
    noise = png((700, 700))  # incompressible: ~1.4 MB > max_image_bytes
    resp = client.post("/v1/predict", files={"file": ("big.png", noise, "image/png")}, headers=AUTH)
    assert resp.status_code == 413 and resp.json()["error"] == "file_too_large"
    huge = b"\0" * 2_100_000
    resp = client.post("/v1/predict", files={"file": ("huge.png", huge, "image/png")}, headers=AUTH)
    assert resp.status_code == 413 and resp.json()["error"] == "request_too_large"


def test_missing_field_and_too_many_files(client):
    resp = client.post("/v1/predict", files={"wrong": ("a.png", png(), "image/png")}, headers=AUTH)
    assert resp.status_code == 422 and resp.json()["error"] == "invalid_request"
    files = [("files", (f"{i}.png", png((20, 20), i), "image/png")) for i in range(9)]
    resp = client.post("/v1/predict/batch", files=files, headers=AUTH)
    assert resp.status_code == 413 and resp.json()["error"] == "too_many_files"


def test_metrics_count_predictions_and_rejections(client, defect_model):
    path = defect_model.images[0]
    client.post("/v1/predict", files={"file": (path.name, path.read_bytes(), "image/png")}, headers=AUTH)
    client.post("/v1/predict", files={"file": ("t.txt", b"text", "text/plain")}, headers=AUTH)
    text = client.get("/metrics").text
    assert 'defectflow_rejected_images_total{reason="not_an_image"} 1.0' in text
    assert "defectflow_predictions_total" in text and "defectflow_model_ready 1.0" in text
    assert 'defectflow_http_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in text


def test_broken_bundle_keeps_liveness_and_reports_on_readiness(tmp_path):
    for c in _client(ServingSettings(model_dir=tmp_path, auth_enabled=False)):
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "failed"
        assert "manifest.json" in ready.json()["detail"]
        resp = c.post("/v1/predict", files={"file": ("a.png", png(), "image/png")})
        assert resp.status_code == 503 and resp.json()["error"] == "model_not_ready"


def test_the_key_is_checked_before_the_body_is_parsed(client):
    """Malformed multipart without a key is 401 (not 400): nothing was read or parsed for it."""
    garbage = {"Content-Type": "multipart/form-data; boundary=xyz"}
    for route in ("/v1/predict", "/v1/predict/batch"):
        resp = client.post(route, content=b"--xyz\r\nnot a part", headers=garbage)
        assert resp.status_code == 401 and resp.json()["error"] == "missing_api_key"
    resp = client.post("/v1/predict", content=b"--xyz\r\nnot a part", headers={**garbage, **AUTH})
    assert resp.status_code in (400, 422) and resp.json()["error"] in ("malformed_body", "invalid_request")


def test_framework_refusals_carry_an_error_code(client):
    assert client.get("/nowhere").json()["error"] == "not_found"
    resp = client.get("/v1/predict")  # no key: the route does not take GET whoever asks
    assert resp.status_code == 405 and resp.json()["error"] == "method_not_allowed"


def test_chunked_body_over_the_limit_is_refused_as_it_streams(client):
    def chunks():
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(30):
            yield b"\0" * 100_000  # 3 MB in total, no Content-Length: the limit (2 MB) is found by counting

    resp = client.post("/v1/predict", content=chunks(),
                       headers={**AUTH, "Content-Type": "multipart/form-data; boundary=xyz"})
    assert resp.status_code == 413 and resp.json()["error"] == "request_too_large"


def test_metrics_labels_come_from_fixed_sets(client):
    for i in range(20):
        client.request(f"BREW{i}", "/healthz")
    text = client.get("/metrics").text
    assert "BREW" not in text
    assert 'defectflow_http_requests_total{method="other",route="/healthz",status="405"} 20.0' in text
    client.post("/v1/predict", files={"file": ("a.png", png(), "image/png")})
    assert ('defectflow_http_requests_total{method="POST",route="/v1/predict",status="401"} 1.0'
            in client.get("/metrics").text)


def test_openapi_says_files_and_batches_are_non_empty(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["Body_predict_v1_predict_post"]["properties"]["file"]["minLength"] == 1
    files = schemas["Body_predict_batch_v1_predict_batch_post"]["properties"]["files"]
    assert files["minItems"] == 1 and files["items"]["minLength"] == 1
