"""Drift per camera over time on the dashboard: the history the drift check appends, shown per camera."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from defectflow.dashboard.router import DashboardConfig, dashboard_router
from defectflow.monitoring.drift_history import read_history
from defectflow.params import DashboardParams
from tests.fixtures.drift import write_two_camera_history


def _client(tmp_path, history) -> TestClient:
    config = DashboardConfig(results_url=f"sqlite:///{tmp_path / 'results.db'}",
                             tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                             model_name="no-such-model", image_roots=(), blob_cache=tmp_path / "cache",
                             gate_auc=0.90, params=DashboardParams(registry_cache_seconds=0), drift_history=history)
    app = FastAPI()
    app.include_router(dashboard_router(config))
    return TestClient(app)


def _camera_block(html: str, camera: str) -> str:
    start = html.index(f'data-testid="drift-camera" data-camera="{camera}"')
    end = html.find('data-testid="drift-camera"', start + 1)
    return html[start:end if end > 0 else html.index("</section>", start)]


def test_history_round_trips_checks_in_order(tmp_path):
    write_two_camera_history(tmp_path / "drift_history.jsonl")
    history = read_history(tmp_path / "drift_history.jsonl")
    assert list(history) == ["cam-1", "cam-2"]
    assert [r.drift.verdict for r in history["cam-1"]] == ["ok", "drift"]
    assert history["cam-1"][1].smallest_p == ("brightness", 1e-7)
    assert len((tmp_path / "drift_history.jsonl").read_text().splitlines()) == 4


def test_page_shows_each_cameras_drift_over_time_with_the_drifted_check_flagged(tmp_path):
    write_two_camera_history(tmp_path / "drift_history.jsonl")
    html = _client(tmp_path, tmp_path / "drift_history.jsonl").get("/dashboard").text
    assert 'data-testid="drift"' in html
    cam1, cam2 = _camera_block(html, "cam-1"), _camera_block(html, "cam-2")
    assert 'data-verdict="drift"' in cam1.split(">", 1)[0]  # the camera's latest verdict
    # Newest check first: day 3 drifted (flagged, brightness p 1e-07), day 2 fine.
    assert re.findall(r'data-testid="drift-check" data-verdict="(\w+)"', cam1) == ["drift", "ok"]
    assert cam1.count('class="flagged"') == 1 and "1e-07" in cam1 and "brightness" in cam1
    assert "2026-10-03 18:00" in cam1 and "2026-10-02 18:00" in cam1
    assert re.findall(r'data-testid="drift-check" data-verdict="(\w+)"', cam2) == ["ok", "ok"]
    assert 'class="flagged"' not in cam2
    only_cam2 = _client(tmp_path, tmp_path / "drift_history.jsonl").get("/dashboard?camera=cam-2").text
    assert 'data-camera="cam-2"' in only_cam2 and 'data-camera="cam-1"' not in only_cam2


def test_no_history_yet_and_a_damaged_history_are_messages_not_errors(tmp_path):
    html = _client(tmp_path, tmp_path / "drift_history.jsonl").get("/dashboard").text
    assert "No drift checks yet" in html
    (tmp_path / "drift_history.jsonl").write_text('{"camera_id": "cam-1"}\n')
    page = _client(tmp_path, tmp_path / "drift_history.jsonl").get("/dashboard")
    assert page.status_code == 200 and "line 1 is not a drift record" in page.text
    assert 'data-testid="drift"' not in _client(tmp_path, None).get("/dashboard").text
