"""Prefect events for the drift check: one per camera with its statistics, and the alert event
(`alerts.drift_event`) for each camera that drifted, which automations/drift-alert.yaml turns
into a notification through the same block as the AUC alert."""

from __future__ import annotations

import logging

from defectflow.monitoring.drift import CameraDrift
from defectflow.params import AlertsParams

log = logging.getLogger(__name__)

CHECK_EVENT = "defectflow.monitoring.drift"


def camera_resource(result: CameraDrift) -> dict[str, str]:
    return {"prefect.resource.id": f"defectflow.camera.{result.camera_id}",
            "prefect.resource.name": result.camera_id}


def emit_drift_events(results: list[CameraDrift], alerts: AlertsParams) -> list[tuple[str, str]]:
    """Emit the per-camera check event and, for drifted cameras, the alert; returns (event, camera) pairs."""
    from prefect.context import FlowRunContext
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    sent = []
    for result in results:
        for name in [CHECK_EVENT] + ([alerts.drift_event] if result.drifted else []):
            if emit_event(event=name, resource=camera_resource(result), payload=result.as_dict()) is None:
                log.warning("Prefect events are disabled; event %s was not sent", name)
            sent.append((name, result.camera_id))
    if FlowRunContext.get() is None:  # outside a flow run, wait for the background sender (see events.py)
        EventsWorker.drain_all(timeout=30)
    return sent
