"""The commands users run, end to end through the CLI on real models and services:
`export`, `score` (registry model and bundle; idempotent re-run), `serve`, `monitor`, and the
batch-scoring flow (flows/scoring.py) against the session's Prefect server on PostgreSQL.
(`build-image` runs in test_batch_image.py; the serving image is built by the training flow's container
task in test_prefect_training.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.services import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("defectflow"))


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run([CLI, *args], capture_output=True, text=True, env={**base, **(env or {})}, cwd=REPO,
                          timeout=600)


def dataset_root(defect_model) -> Path:
    """The folder holding every image of the test model's dataset (they sit in day/camera subfolders)."""
    return Path(os.path.commonpath(defect_model.images))


def test_export_then_score_a_folder_twice(defect_model, tmp_path):
    tracking = {"MLFLOW_TRACKING_URI": defect_model.tracking_uri}
    bundle = tmp_path / "bundle"
    proc = cli("export", "--model", defect_model.model_uri, "--out", str(bundle), "--json", env=tracking)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model_version"] == defect_model.version and (bundle / "model.onnx").stat().st_size > 0

    folder = dataset_root(defect_model)
    results = f"sqlite:///{tmp_path / 'results.db'}"
    first = cli("score", "--input", str(folder), "--model", defect_model.model_uri, "--results", results,
                "--workdir", str(tmp_path / "w"), "--json", env=tracking)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout)
    assert summary["images"] == len(defect_model.images) and summary["scored"] == summary["images"]
    again = cli("score", "--input", str(folder), "--model", defect_model.model_uri, "--results", results,
                "--workdir", str(tmp_path / "w"), "--json", env=tracking)
    assert again.returncode == 0 and json.loads(again.stdout)["scored"] == 0
    assert json.loads(again.stdout)["already_scored"] == summary["images"]
    # The exported bundle scores the same images (same model version: nothing new to write).
    onnx = cli("score", "--input", str(folder), "--model", str(bundle), "--results", results,
               "--workdir", str(tmp_path / "w"), "--json")
    assert onnx.returncode == 0, onnx.stderr[-2000:]
    assert json.loads(onnx.stdout)["model_version"] == defect_model.version


def test_serve_answers_predictions_with_the_key(edge_bundle, defect_model, tmp_path):
    port, key = free_port(), "cli-test-key"
    env = {**os.environ, "DEFECTFLOW_API_KEY": key}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([CLI, "serve", "--bundle", str(edge_bundle), "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        image = defect_model.images[0]
        files = {"file": (image.name, image.read_bytes(), "image/png")}
        assert httpx.post(f"{base}/v1/predict", files=files, timeout=30).status_code == 401
        resp = httpx.post(f"{base}/v1/predict", files=files, headers={"X-API-Key": key}, timeout=30)
        assert resp.status_code == 200, (tmp_path / "serve.log").read_text()[-2000:]
        assert resp.json()["model_version"] == defect_model.version and resp.json()["decision"] in {"pass", "fail"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_monitor_judges_the_champion_on_newly_labelled_images(defect_model, tmp_path):
    """A copy of the test champion whose training data ends before the new images: monitor
    scores them, and its exit code follows the AUC it reports."""
    from mlflow import MlflowClient

    from defectflow.synth import generate

    client = MlflowClient(defect_model.tracking_uri, registry_uri=defect_model.tracking_uri)
    name = "monitor-cli"
    copy = client.copy_model_version(f"models:/{defect_model.name}/{defect_model.version}", name)
    client.set_model_version_tag(name, copy.version, "trained_until", "2026-09-01T00:00:00+00:00")
    client.set_registered_model_alias(name, "champion", copy.version)
    data = tmp_path / "new"
    generate(data, 40, seed=21, image_size=96, start="2026-10-01", days=3, defect_rate=0.4, label_noise=0.0)

    proc = cli("monitor", "--data", str(data), "--workdir", str(tmp_path / "w"), "--set", f"register.model_name={name}",
               "--set", "alerts.min_count=30", "--json", env={"MLFLOW_TRACKING_URI": defect_model.tracking_uri})
    result = json.loads(proc.stdout)
    assert result["n"] == 40 and result["auc"] is not None, proc.stderr[-2000:]
    expected = "below_threshold" if result["auc"] < 0.90 else "ok"
    assert result["verdict"] == expected and proc.returncode == (8 if expected == "below_threshold" else 0)


def test_scoring_flow_against_the_prefect_server(prefect_server, edge_bundle, defect_model, tmp_path):
    results = f"sqlite:///{tmp_path / 'results.db'}"
    proc = subprocess.run([sys.executable, str(REPO / "flows" / "scoring.py"), "--input",
                           str(dataset_root(defect_model)), "--model", str(edge_bundle), "--results", results,
                           "--workdir", str(tmp_path / "w")],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["scored"] == len(defect_model.images) and summary["model_version"] == defect_model.version

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["defectflow-scoring"])))
    assert runs and runs[-1].state.is_completed()
