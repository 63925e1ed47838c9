"""Deployments, schedules and alerts against a real Prefect server, worker and MLflow server.

`prefect deploy --all` registers the deployments of prefect.yaml on a process work pool; the
alert automation is applied from the repository's definition (twice: idempotent); the
monitoring deployment gets a one-minute cron schedule, and a real process worker picks up the
scheduled run. The run judges the champion on drifted images labelled after its training,
emits the below-threshold event, and the Automation's webhook notification must reach a
receiver on 127.0.0.1 with the AUC in its body, and start the retraining deployment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from defectflow.cli import main
from defectflow.params import PromoteParams
from tests.fixtures.pipeline import fast_params
from tests.fixtures.services import ServiceProcess, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NAME = "monitor-it"
POOL = "defectflow-process"
RUN_TIMEOUT_S = 300


def prefect_cli(*args: str) -> str:
    proc = subprocess.run([str(Path(sys.executable).with_name("prefect")), "--no-prompt", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=180, env=os.environ.copy())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture
def drifted_labelled_images(tmp_path) -> Path:
    """Images labelled after the champion's training data, from a replaced camera (the drift scenario)."""
    from defectflow.synth import generate

    out = tmp_path / "new_labels"
    generate(out, n=60, seed=12, image_size=64, start="2026-10-05", days=3, drift_from="2026-10-05",
             drift_kind="camera")
    return out


@pytest.fixture
def champion(trained_pipeline, mlflow_tracking, tmp_path) -> str:
    from defectflow.registry.client import Registry
    from defectflow.registry.promote import promote
    from defectflow.registry.register import register_model
    from defectflow.workdir import Workdir

    work = tmp_path / "champion_work"
    shutil.copytree(trained_pipeline.workdir, work, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    registered = register_model(trained_pipeline.data_dir, Workdir(work), fast_params(f"register.model_name={NAME}"))
    version = registered["version"]
    promote(Registry(mlflow_tracking), NAME, version, PromoteParams(), "test")
    return version


def test_scheduled_monitoring_run_alerts_through_webhook_and_starts_retraining(
        prefect_server, mlflow_tracking, champion, drifted_labelled_images, alert_receiver, tmp_path, capsys):
    from mlflow import MlflowClient
    from prefect.automations import Automation
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate, DeploymentUpdate
    from prefect.client.schemas.schedules import CronSchedule

    prefect_cli("work-pool", "create", POOL, "--type", "process")
    prefect_cli("deploy", "--all")
    with get_client(sync_client=True) as client:
        retrain = client.read_deployment_by_name("defectflow-training/nightly-retrain")
        monitor = client.read_deployment_by_name("defectflow-monitoring/hourly-monitoring")
    assert [s.schedule.cron for s in retrain.schedules] == ["0 2 * * *"]
    assert [s.schedule.cron for s in monitor.schedules] == ["0 * * * *"]

    # The alert automation, from the repository's definition; applying twice keeps one.
    assert main(["automations", "apply", "--webhook-url", alert_receiver.url, "--json"]) == 0
    assert '"result": "created"' in capsys.readouterr().out
    assert main(["automations", "apply", "--json"]) == 0
    assert '"result": "updated"' in capsys.readouterr().out
    automation = Automation.read(name="defectflow-auc-below-threshold")
    assert {a.type for a in automation.actions} == {"send-notification", "run-deployment"}
    with get_client(sync_client=True) as client:
        assert len(client.read_automations_by_name("defectflow-auc-below-threshold")) == 1

        # Point the monitoring deployment at this test's data and give it a one-minute schedule.
        client.update_deployment(monitor.id, DeploymentUpdate(parameters={
            "data_dir": str(drifted_labelled_images), "workdir": str(tmp_path / "monitor_work"),
            "overrides": [f"register.model_name={NAME}"]}))
        # The retraining run the alert starts should end fast and harmlessly here: no data.
        client.update_deployment(retrain.id, DeploymentUpdate(parameters={
            "data_dir": str(tmp_path / "no-data"), "workdir": str(tmp_path / "retrain_work")}))
        client.create_deployment_schedules(monitor.id, [DeploymentScheduleCreate(
            schedule=CronSchedule(cron="* * * * *", timezone="UTC"), active=True)])

    worker = ServiceProcess([str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", POOL,
                             "--prefetch-seconds", "5"], log=tmp_path / "worker.log", env=os.environ.copy(), cwd=REPO)
    try:
        run = wait_for_completed_scheduled_run(monitor.id, worker)
        lateness = (run.start_time - run.expected_start_time).total_seconds()
        total = (run.end_time - run.expected_start_time).total_seconds()
        print(f"\nscheduled monitoring run: due {run.expected_start_time:%H:%M:%S}, started {lateness:.1f} s late, "
              f"completed {total:.1f} s after it was due (run time {run.total_run_time.total_seconds():.1f} s)")

        tracking = MlflowClient(mlflow_tracking, registry_uri=mlflow_tracking)
        monitoring = tracking.search_runs(
            [tracking.get_experiment_by_name("defectflow-monitoring").experiment_id],
            order_by=["start_time DESC"], max_results=1)[0]
        auc = monitoring.data.metrics["auc"]
        assert monitoring.data.tags["verdict"] == "below_threshold" and auc < 0.90

        wait_until(lambda: alert_receiver.bodies, 90, "the webhook alert")
        body = alert_receiver.bodies[0]
        print(f"alert payload received: {json.dumps(body)}")
        assert f"AUC={auc}" in body["body"] and f"{NAME} v{champion}" in body["body"]
        assert "threshold=0.9" in body["body"] and body["source"] == "defectflow"

        wait_until(lambda: retraining_runs(retrain.id), 60, "the retraining run started by the automation")
    finally:
        worker.stop()


def wait_for_completed_scheduled_run(deployment_id, worker: ServiceProcess):
    """The first scheduled run of the deployment that reached a final state; it must have completed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    final = []

    def finished() -> bool:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
        final[:] = [r for r in runs if r.auto_scheduled and r.state and r.state.is_final()]
        return bool(final)

    wait_until(finished, RUN_TIMEOUT_S, "a finished scheduled monitoring run", worker.proc, worker.log)
    run = final[0]
    assert run.state.is_completed(), f"scheduled run ended {run.state.name}: {run.state.message}"
    return run


def retraining_runs(deployment_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
