"""The drift panel in headless Chromium: `defectflow dashboard` on a work directory whose drift
history holds two cameras over two checks, cam-1 drifted on the second. The panel shows each
camera's checks newest first with the drifted one marked; the screenshot is kept in
test-artifacts/dashboard-drift.png.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from defectflow.workdir import Workdir
from tests.fixtures.drift import write_two_camera_history
from tests.fixtures.services import free_port, running_http_service

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def dashboard_url(tmp_path):
    workdir = Workdir(tmp_path / "work")
    write_two_camera_history(workdir.drift_history)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    argv = [str(Path(sys.executable).with_name("defectflow")), "dashboard", "--workdir", str(workdir.root),
            "--results", f"sqlite:///{tmp_path / 'results.db'}", "--port", str(port)]
    with running_http_service(argv, port, "/dashboard", "defectflow dashboard", tmp_path / "dashboard.log",
                              env=env) as base:
        yield base


def test_drift_panel_shows_each_camera_over_time_in_a_real_browser(page, dashboard_url):
    page.goto(f"{dashboard_url}/dashboard")
    panel = page.get_by_test_id("drift")
    panel.wait_for()
    cameras = panel.get_by_test_id("drift-camera")
    assert [cameras.nth(i).get_attribute("data-camera") for i in range(cameras.count())] == ["cam-1", "cam-2"]

    cam1 = panel.locator('[data-camera="cam-1"]')
    assert cam1.get_attribute("data-verdict") == "drift"
    checks = cam1.get_by_test_id("drift-check")
    assert [checks.nth(i).get_attribute("data-verdict") for i in range(checks.count())] == ["drift", "ok"]
    flagged = checks.first
    assert "brightness" in flagged.inner_text() and "⚠" in flagged.inner_text()
    # The drifted check is visibly marked: its cells are tinted, the fine ones are not.
    tint = "el => getComputedStyle(el.querySelector('td')).backgroundColor"
    assert flagged.evaluate(tint) != checks.nth(1).evaluate(tint)
    cam2 = panel.locator('[data-camera="cam-2"]')
    assert cam2.get_attribute("data-verdict") == "ok" and cam2.locator("tr.flagged").count() == 0

    ARTIFACTS.mkdir(exist_ok=True)
    panel.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "dashboard-drift.png"), full_page=True)
