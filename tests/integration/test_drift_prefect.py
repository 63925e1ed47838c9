"""The drift flow against a real Prefect server: a lighting change on the newest day, no labels
used, must emit the per-camera drift events and make the drift Automation's webhook fire."""

from __future__ import annotations

import pytest

from defectflow.cli import main
from tests.fixtures.services import wait_until

pytestmark = pytest.mark.integration


def test_drift_flow_emits_camera_events_and_the_automation_alerts(prefect_server, alert_receiver, tmp_path, capsys):
    from defectflow.synth import generate
    from flows.monitoring import drift_flow

    data = tmp_path / "line"
    generate(data, 260, 3, image_size=64, days=11, start="2026-09-01", drift_from="2026-09-11",
             drift_kind="lighting", unlabelled_share=1.0)  # not one label: drift must not need them
    assert main(["automations", "apply", "--file", "automations/drift-alert.yaml", "--webhook-url",
                 alert_receiver.url, "--json"]) == 0
    assert '"result": "created"' in capsys.readouterr().out

    results = drift_flow(data_dir=str(data), workdir=str(tmp_path / "work"), reference_until="2026-09-10T00:00:00Z",
                         overrides=["featurize.image_size=64", "featurize.num_workers=0"])
    drifted = [r["camera_id"] for r in results if r["verdict"] == "drift"]
    assert drifted, results

    wait_until(lambda: alert_receiver.bodies, 120, "the drift webhook alert")
    body = alert_receiver.bodies[0]
    assert body["source"] == "defectflow" and "drift alert: camera" in body["body"]
    assert any(f"camera {camera}" in body["body"] for camera in drifted)
