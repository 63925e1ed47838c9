"""The monitoring flows. `monitoring_flow`: judge the champion on images labelled since it was
trained, log the AUC to MLflow and emit Prefect events (the alert Automation reacts to the
below-threshold one). `drift_flow`: on images with or without labels, compare each camera's last
window with the training window and emit one event per camera (automations/drift-alert.yaml).

Run it once:  python flows/monitoring.py --data DIR [--workdir W]
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # Run as a script, the flow starts Prefect's ephemeral API; on a busy 2-core machine it needs
    # longer than the 20 s default to come up.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from defectflow.params import AlertsParams, Params, RegisterParams
from defectflow.workdir import Workdir


@task(name="monitor-champion", retries=2, retry_delay_seconds=[5, 30])
def monitor_task(data_dir: Path, workdir: Workdir, params: Params, tracking_uri: str) -> dict:
    from defectflow.monitoring.monitor import monitor_champion

    return monitor_champion(data_dir, workdir.monitoring, params, tracking_uri).as_dict()


@flow(name="defectflow-monitoring", log_prints=True)
def monitoring_flow(data_dir: str | None = None, workdir: str | None = None, params_file: str | None = None,
                    overrides: list[str] | None = None) -> dict:
    """Score the champion on newly labelled images; emit `defectflow.monitoring.auc` and, below
    alerts.min_auc, the alert event."""
    from defectflow.monitoring.monitor import MonitoringResult
    from defectflow.orchestration.events import emit_monitoring_events
    from defectflow.registry.client import Registry

    logger = get_run_logger()
    params = Params.load(params_file, overrides or [])
    alerts = params.section("alerts", AlertsParams)
    data = params.data.data_dir(data_dir)
    wd = Workdir(params.data.work_dir(workdir))
    uri = Registry.from_params(params, wd).reachable().tracking_uri

    result = MonitoringResult(**monitor_task(data, wd, params, uri))
    events = emit_monitoring_events(result, alerts)
    auc = "n/a" if result.auc is None else f"{result.auc:.4f}"
    logger.info("champion %s v%s: AUC %s on %d images (threshold %s) → %s; events: %s", result.model_name,
                result.model_version, auc, result.n, result.min_auc, result.verdict, ", ".join(events))
    create_markdown_artifact(
        key="monitoring-report",
        markdown=(f"# Champion monitoring\n\n| model | version | images | fails | AUC | threshold | verdict |\n"
                  f"|---|---:|---:|---:|---:|---:|---|\n| {result.model_name} | {result.model_version} | {result.n} | "
                  f"{result.n_fail} | {auc} | {result.min_auc} | **{result.verdict}** |\n\n"
                  f"Judged on valid labelled images captured after {result.since}; MLflow run "
                  f"`{result.mlflow_run_id}` in experiment `{alerts.experiment}`.\n"),
        description=f"champion AUC {auc}: {result.verdict}",
    )
    return result.as_dict()


@task(name="check-drift", retries=1, retry_delay_seconds=[10])
def drift_task(data_dir: Path, workdir: Workdir, params: Params, reference_until: str) -> list[dict]:
    from defectflow.monitoring.drift_check import check_drift

    # The check works in its own folder; its history goes where the dashboard of this workdir reads it.
    results = check_drift(data_dir, Workdir(workdir.root / "drift"), params, reference_until,
                          history=workdir.drift_history)
    return [r.as_dict() for r in results]


@flow(name="defectflow-drift", log_prints=True)
def drift_flow(data_dir: str | None = None, workdir: str | None = None, params_file: str | None = None,
               overrides: list[str] | None = None, reference_until: str | None = None) -> list[dict]:
    """Per camera, the last `drift.window_days` of images against the reference window (up to
    `reference_until`, default the champion's training cutoff); emits `defectflow.monitoring.drift`
    per camera and `alerts.drift_event` for each drifted one. No labels needed."""
    from defectflow.monitoring.drift import CameraDrift
    from defectflow.orchestration.drift_events import emit_drift_events

    params = Params.load(params_file, overrides or [])
    data = params.data.data_dir(data_dir)
    wd = Workdir(params.data.work_dir(workdir))
    if reference_until is None:
        reference_until = champion_cutoff(params, wd)
    results = [CameraDrift(**r) for r in drift_task(data, wd, params, reference_until)]
    emit_drift_events(results, params.section("alerts", AlertsParams))
    rows = "".join(f"| {r.camera_id} | {r.n_recent} | {r.n_reference} | **{r.verdict}** | "
                   f"{min(r.p_values.values()) if r.p_values else 'n/a'} |\n" for r in results)
    create_markdown_artifact(key="drift-report", description="drift per camera", markdown=(
        f"# Drift per camera\n\nReference: images up to {reference_until}.\n\n"
        f"| camera | recent | reference | verdict | min p |\n|---|---:|---:|---|---:|\n{rows}"))
    get_run_logger().info("drift: %s", ", ".join(f"{r.camera_id} {r.verdict}" for r in results))
    return [r.as_dict() for r in results]


def champion_cutoff(params: Params, wd: Workdir) -> str:
    """When the champion's training data ended: the end of the drift reference window."""
    from defectflow.errors import DefectflowError
    from defectflow.registry.client import Registry, training_cutoff

    name = params.section("register", RegisterParams).model_name
    champion = Registry.from_params(params, wd).champion(name)
    if champion is None:
        raise DefectflowError(f"model {name!r} has no champion: pass reference_until explicitly")
    return training_cutoff(champion).isoformat()


if __name__ == "__main__":
    from defectflow.orchestration.script import run_as_script

    run_as_script(monitoring_flow, __doc__)
