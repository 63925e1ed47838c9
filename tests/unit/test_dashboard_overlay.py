"""The dashboard on the scoring service: flagged images get their anomaly-map overlay when the
service runs the model version that scored them and that model has the anomaly head."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from defectflow.dashboard.router import DashboardConfig, dashboard_router
from defectflow.inference.bundle import EdgeModel
from defectflow.params import DashboardParams
from defectflow.scoring.batch import score
from defectflow.serving.app import create_app
from defectflow.serving.settings import ServingSettings


def _dashboard_client(bundle: Path, scored_with: Path, defect_model, tmp_path: Path) -> Iterator[TestClient]:
    data = next(d for d in defect_model.images[0].parents if (d / "labels.csv").is_file())
    results = f"sqlite:///{tmp_path / 'results.db'}"
    score(str(data), str(scored_with), results, batch_size=16, blob_cache=tmp_path / "cache", progress=False)
    # A registry of its own: None would open MLflow's default store, ./mlflow.db in the working directory.
    config = DashboardConfig(results_url=results, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                             model_name=defect_model.name,
                             image_roots=(data,), blob_cache=tmp_path / "cache", gate_auc=0.90,
                             params=DashboardParams(thumbnail_px=64, registry_cache_seconds=0))
    app = create_app(ServingSettings(model_dir=bundle, auth_enabled=False), extra_routers=[dashboard_router(config)])
    with TestClient(app) as client:
        app.state.model_slot.wait(60)
        yield client


def _overlay_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'/overlays/(\d+)"', html)]


@pytest.fixture
def explaining(anomaly_edge_bundle, defect_model, tmp_path) -> Iterator[TestClient]:
    yield from _dashboard_client(anomaly_edge_bundle.bundle, anomaly_edge_bundle.bundle, defect_model, tmp_path)


def test_flagged_images_show_their_overlay(explaining, anomaly_edge_bundle):
    html = explaining.get("/dashboard").text
    flagged = re.findall(r'data-testid="flagged" data-score-id="(\d+)"', html)
    assert flagged and sorted(_overlay_ids(html)) == sorted(int(i) for i in flagged)
    response = explaining.get(f"/dashboard/overlays/{flagged[0]}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    size = EdgeModel(anomaly_edge_bundle.bundle).manifest.image_size
    with Image.open(io.BytesIO(response.content)) as overlay:
        assert overlay.size == (size, size)
    assert explaining.get("/dashboard/overlays/99999").status_code == 404


def test_no_overlay_without_the_head_or_for_another_models_scores(edge_bundle, anomaly_edge_bundle, defect_model,
                                                                   tmp_path):
    # Scored by the model without the head, served by the one with it: other version, no overlay.
    for client in _dashboard_client(anomaly_edge_bundle.bundle, edge_bundle, defect_model, tmp_path / "a"):
        html = client.get("/dashboard").text
        first = re.search(r'data-testid="flagged" data-score-id="(\d+)"', html).group(1)
        assert _overlay_ids(html) == []
        response = client.get(f"/dashboard/overlays/{first}")
        assert response.status_code == 404 and "anomaly head" in response.text
    for client in _dashboard_client(edge_bundle, edge_bundle, defect_model, tmp_path / "b"):
        html = client.get("/dashboard").text
        assert 'data-testid="flagged"' in html and _overlay_ids(html) == []
