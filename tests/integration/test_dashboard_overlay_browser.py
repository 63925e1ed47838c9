"""The dashboard on the scoring service in headless Chromium: every flagged image shows its
anomaly-map overlay next to the thumbnail and says why it was flagged (classifier or novel).
Screenshot: test-artifacts/dashboard-overlay.png."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from defectflow.scoring.batch import score
from tests.fixtures.services import free_port, running_http_service

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def service_with_dashboard(tmp_path, anomaly_edge_bundle, defect_model):
    """`python -m defectflow.serving` on the explaining bundle, the dashboard mounted, its scores in SQLite."""
    data = next(d for d in defect_model.images[0].parents if (d / "labels.csv").is_file())
    results = f"sqlite:///{tmp_path / 'results.db'}"
    score(str(data), str(anomaly_edge_bundle.bundle), results, batch_size=16, blob_cache=tmp_path / "cache",
          progress=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["workdir"] = str(tmp_path / "work")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    port = free_port()
    env = {**os.environ, "DEFECTFLOW_MODEL_DIR": str(anomaly_edge_bundle.bundle), "DEFECTFLOW_PORT": str(port),
           "DEFECTFLOW_AUTH_ENABLED": "false", "DEFECTFLOW_EXTRA_ROUTERS": "defectflow.dashboard.mount:router",
           "DEFECTFLOW_RESULTS_URL": results, "DEFECTFLOW_DASHBOARD_IMAGE_ROOTS": str(data),
           "DEFECTFLOW_PARAMS": str(tmp_path / "params.yaml"), "MLFLOW_TRACKING_URI": defect_model.tracking_uri}
    with running_http_service([sys.executable, "-m", "defectflow.serving"], port, "/readyz", "scoring service",
                              tmp_path / "serving.log", env=env) as base:
        yield base


def test_flagged_images_show_their_anomaly_overlay_in_a_real_browser(page, service_with_dashboard):
    page.goto(f"{service_with_dashboard}/dashboard")
    cards = page.get_by_test_id("flagged")
    assert cards.count() > 0
    for i in range(cards.count()):  # thumbnail and overlay both really loaded and decoded
        for img in (cards.nth(i).locator("img").first, cards.nth(i).get_by_test_id("overlay")):
            img.scroll_into_view_if_needed()
            assert img.evaluate("img => new Promise(ok => img.complete ? ok(img.naturalWidth > 0) : "
                                "img.addEventListener('load', () => ok(img.naturalWidth > 0)))")
    # The service serves the version that scored them, so each card says why it was flagged; the fixture's
    # head (0.9 quantile) sends some images the classifier passes to review as novel.
    reasons = [cards.nth(i).get_by_test_id("flag-reason").get_attribute("data-reason") for i in range(cards.count())]
    assert set(reasons) == {"classifier", "novel"}
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-overlay.png"), full_page=True)
