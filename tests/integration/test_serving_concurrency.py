"""The service as deployed: `python -m defectflow.serving` under uvicorn on loopback, 50 requests at once."""

from __future__ import annotations

import base64
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from defectflow.inference.bundle import EdgeModel
from tests.fixtures.services import free_port, running_http_service

pytestmark = pytest.mark.integration
API_KEY = "concurrency-test-key"
N_CONCURRENT = 50


def _serve(bundle, tmp_path_factory):
    port = free_port()
    env = {**os.environ, "DEFECTFLOW_MODEL_DIR": str(bundle), "DEFECTFLOW_PORT": str(port),
           "DEFECTFLOW_API_KEY": API_KEY}
    log = tmp_path_factory.mktemp("serving") / "uvicorn.log"
    with running_http_service([sys.executable, "-m", "defectflow.serving"], port, "/readyz", "scoring service", log,
                              env=env) as url:
        yield url
    assert API_KEY not in log.read_text(), "the API key must never be logged"


@pytest.fixture(scope="module")
def service(edge_bundle, tmp_path_factory):
    yield from _serve(edge_bundle, tmp_path_factory)


@pytest.fixture(scope="module")
def explaining_service(anomaly_edge_bundle, tmp_path_factory):
    yield from _serve(anomaly_edge_bundle.bundle, tmp_path_factory)


def test_fifty_concurrent_requests_each_get_their_own_answer(service, defect_model, edge_bundle):
    images = [defect_model.images[i % len(defect_model.images)] for i in range(N_CONCURRENT)]
    expected = {p.name: e for p, e in zip(images, EdgeModel(edge_bundle).predict_paths(images), strict=True)}

    def call(path):
        with httpx.Client(timeout=60) as c:
            r = c.post(f"{service}/v1/predict", headers={"X-API-Key": API_KEY},
                       files={"file": (path.name, path.read_bytes(), "image/png")})
        return path.name, r

    with ThreadPoolExecutor(N_CONCURRENT) as pool:
        results = list(pool.map(call, images))
    assert all(r.status_code == 200 for _, r in results), [r.text for _, r in results if r.status_code != 200]
    for name, r in results:
        body = r.json()
        assert body["filename"] == name
        assert body["fail_probability"] == pytest.approx(expected[name].fail_probability, abs=1e-6)
        assert body["decision"] == expected[name].decision


def test_single_image_latency_is_reported(service, defect_model):
    """Measures p50/p99 of sequential single-image requests (reported, not asserted: see bench/)."""
    path = defect_model.images[0]
    payload = path.read_bytes()
    latencies = []
    with httpx.Client(timeout=30) as c:
        for _ in range(100):
            start = time.perf_counter()
            r = c.post(f"{service}/v1/predict", headers={"X-API-Key": API_KEY},
                       files={"file": (path.name, payload, "image/png")})
            latencies.append(time.perf_counter() - start)
            assert r.status_code == 200
    q = statistics.quantiles(latencies, n=100)
    print(f"\nsingle-image latency over {len(latencies)} requests: p50 {q[49] * 1e3:.1f} ms, p99 {q[98] * 1e3:.1f} ms")
    text = httpx.get(f"{service}/metrics").text
    assert 'defectflow_http_request_seconds_count{method="POST",route="/v1/predict"}' in text


def test_concurrent_explanations_each_get_their_own_map(explaining_service, defect_model, anomaly_edge_bundle):
    images = [defect_model.images[i % len(defect_model.images)] for i in range(20)]
    model = EdgeModel(anomaly_edge_bundle.bundle)
    # One image per graph run, as the service runs them (a larger batch may round the last bits differently).
    expected = {p.name: model.explain_decoded([model.decode(p.read_bytes())])[0][1] for p in images}

    def call(path):
        with httpx.Client(timeout=120) as c:
            r = c.post(f"{explaining_service}/v1/predict?explain=true", headers={"X-API-Key": API_KEY},
                       files={"file": (path.name, path.read_bytes(), "image/png")})
        return path.name, r

    with ThreadPoolExecutor(len(images)) as pool:
        results = list(pool.map(call, images))
    assert all(r.status_code == 200 for _, r in results), [r.text for _, r in results if r.status_code != 200]
    for name, r in results:
        why = r.json()["explanation"]
        assert why["anomaly_score"] == pytest.approx(expected[name].anomaly_score, rel=1e-5)
        assert base64.b64decode(why["overlay_png_base64"]) == expected[name].overlay_png
