"""The dashboard in headless Chromium: `defectflow dashboard` on PostgreSQL results and the MLflow server.

The page loads, shows the flagged boards with their thumbnails and the champion's AUC
history, and an operator's correction made by clicking is stored in the reviews table. A
screenshot is kept as a test artifact in test-artifacts/dashboard.png.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from defectflow.scoring.batch import score
from defectflow.scoring.results import Review, Score, open_results
from tests.fixtures.scoring_model import TINY_MODEL_NAME, make_input, register_tiny_model
from tests.fixtures.services import free_port, running_http_service

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def dashboard_url(tmp_path, mlflow_tracking, postgres_url):
    """`defectflow dashboard` serving a scored folder; yields (base URL, results URL)."""
    register_tiny_model(mlflow_tracking, 0.912)
    register_tiny_model(mlflow_tracking, 0.947, ("champion",))
    folder = make_input(tmp_path / "in")
    results = postgres_url("dashboard_browser")
    score(str(folder), f"models:/{TINY_MODEL_NAME}@champion", results, batch_size=4,
          blob_cache=tmp_path / "cache", tracking_uri=mlflow_tracking, progress=False)
    port = free_port()
    argv = [str(Path(sys.executable).with_name("defectflow")), "dashboard", "--results", results,
            "--images", str(folder), "--workdir", str(tmp_path / "work"), "--port", str(port),
            "--set", f"register.model_name={TINY_MODEL_NAME}"]
    with running_http_service(argv, port, "/dashboard", "defectflow dashboard", tmp_path / "dashboard.log",
                              env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_tracking}) as base:
        yield base, results


def test_operator_reviews_flagged_boards_in_a_real_browser(page, dashboard_url):
    base, results = dashboard_url
    page.goto(f"{base}/dashboard")

    cards = page.get_by_test_id("flagged")
    assert cards.count() == 4
    for i in range(4):  # every thumbnail really loaded and decoded
        assert cards.nth(i).locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    champion = page.get_by_test_id("champion")
    assert "v2" in champion.inner_text() and "0.947" in champion.inner_text()
    assert page.get_by_test_id("versions").locator("tbody tr").count() == 2

    target = cards.first
    image = target.locator(".img").inner_text()
    score_id = int(target.get_attribute("data-score-id"))
    page.fill("#reviewer", "Ana Lopez")
    target.get_by_role("button", name="Correct → pass").click()
    page.get_by_test_id("saved").wait_for()
    assert "corrected to pass" in page.get_by_test_id("saved").inner_text()
    assert page.get_by_test_id("flagged").count() == 3
    assert page.get_by_test_id("queue-count").inner_text() == "3"
    assert page.input_value("#reviewer") == "Ana Lopez"  # remembered for the next review

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    engine = open_results(results)
    with Session(engine) as session:
        review = session.scalars(sa.select(Review)).one()
        assert (review.score_id, review.label, review.reviewer) == (score_id, "pass", "Ana Lopez")
        assert session.get(Score, score_id).image == image
    engine.dispose()
