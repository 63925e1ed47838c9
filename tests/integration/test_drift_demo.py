"""`make drift-demo` (scripts/drift-demo.sh) end to end, on a smaller copy of its data: the champion
judged on images taken after a lighting change falls below alerts.min_auc (the alert), the model
retrained on old + new images is promoted, and on a later week the new champion is back above it.

Size: 600 / 300 / 120 images instead of 1200 / 700 / 150 (docs/orchestration.md quotes the full run), at
the synthetic images' own 160 px: about 2 min of CPU (334 s wall on the shared 2-core VM at load 6). With half the
training images the early CV folds train on 120-360 images and reach a mean AUC near 0.85 (measured:
0.848 and 0.858), below the shipped 0.90 gate that test_demo_gate holds the 1200-image demo to; the
gate is lowered here for that reason only. What the demo is about — the monitoring verdicts against
the shipped alerts.min_auc and the promotion — is judged with the shipped settings. Measured here:
champion v1 AUC 0.836 on the new lamps' images (alert), v2 promoted (newest window 0.896 vs 0.843),
v2 AUC 0.937 on the later week.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODEL_NAME = "defectflow-drift-demo"  # the script's register.model_name
SMALLER = {
    "DRIFT_DEMO_N": "600 300 120",
    "DRIFT_DEMO_SET": "featurize.image_size=160 gate.min_auc=0.75 gate.min_fold_auc=0.6",
}


def test_drift_demo_alerts_retrains_promotes_and_recovers(tmp_path):
    from mlflow import MlflowClient

    from defectflow.params import AlertsParams, Params

    out = tmp_path / "drift-demo"
    # The demo's own SQLite store, and no Prefect events into whatever server this session runs.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_API_URL"))}
    env.update(SMALLER, DEFECTFLOW=str(BIN / "defectflow"), PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(REPO / "scripts" / "drift-demo.sh"), str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    alerts = Params.load(REPO / "params.yaml").section("alerts", AlertsParams)
    uri = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(alerts.experiment)
    runs = client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
    judged = [(r.data.tags["model_version"], r.data.tags["verdict"], r.data.metrics.get("auc")) for r in runs]
    assert [(version, verdict) for version, verdict, _ in judged] == [("1", "below_threshold"), ("2", "ok")], judged
    (_, _, drifted_auc), (_, _, recovered_auc) = judged
    assert drifted_auc < alerts.min_auc <= recovered_auc
    assert "→ below_threshold" in proc.stdout and "→ ok" in proc.stdout  # what the person running it reads

    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "2"  # SQLite: an int
    assert client.get_model_version(MODEL_NAME, "2").tags["promotion.decision"] == "promoted"
    history = proc.stdout.split("=== promotion history", 1)[1]
    assert re.search(r"promoted\s+v1\s+previous=-", history) and re.search(r"promoted\s+v2\s+previous=1", history)
