"""Prefect events carrying the monitoring result, which the alert Automation reacts to.

Prefect triggers match event names and resource labels but cannot compare numbers, so the
threshold is judged here and a separate event name marks the alert. Every check emits
`defectflow.monitoring.auc` (for dashboards and history); a check below the threshold also
emits the alert event named in `alerts.event`.
"""

from __future__ import annotations

import logging

from defectflow.monitoring.monitor import MonitoringResult
from defectflow.params import AlertsParams

log = logging.getLogger(__name__)

CHECK_EVENT = "defectflow.monitoring.auc"


def model_resource(result: MonitoringResult) -> dict[str, str]:
    """The Prefect resource an event is about: the registered model (labels the trigger can match)."""
    return {
        "prefect.resource.id": f"defectflow.model.{result.model_name}",
        "prefect.resource.name": result.model_name,
        "defectflow.model.version": result.model_version,
    }


def event_payload(result: MonitoringResult) -> dict[str, object]:
    return {
        "auc": result.auc,
        "threshold": result.min_auc,
        "model_name": result.model_name,
        "model_version": result.model_version,
        "n": result.n,
        "n_fail": result.n_fail,
        "verdict": result.verdict,
        "since": result.since,
        "mlflow_run_id": result.mlflow_run_id,
    }


def emit_monitoring_events(result: MonitoringResult, alerts: AlertsParams) -> list[str]:
    """Emit the check event (always) and the alert event (AUC below threshold); return their names."""
    from prefect.context import FlowRunContext
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    names = [CHECK_EVENT] + ([alerts.event] if result.alert else [])
    for name in names:
        if emit_event(event=name, resource=model_resource(result), payload=event_payload(result)) is None:
            log.warning("Prefect events are disabled; event %s was not sent", name)
    # Events go out from a background worker; outside a flow run (the CLI) wait for it so a
    # short-lived process loses none. A flow run drains it itself when it ends.
    if FlowRunContext.get() is None:
        EventsWorker.drain_all(timeout=30)
    return names
