"""The training flow: (ingest →) validate → featurize → train → evaluate → register → promote
(→ build and push the serving container).

Thin by design: the stage tasks are built from the stage declarations (defectflow.stages) and
call the stage functions the CLI and `dvc repro` also call (defectflow.orchestration.tasks); the
plain steps around them live in defectflow.orchestration.training. What the flow adds is the
order, the Markdown artifact, and clear failure states.

Run it on the embedded defaults with Prefect's ephemeral API:  python flows/training.py
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # Run as a script, the flow starts Prefect's ephemeral API; on a busy 2-core machine it needs
    # longer than the 20 s default to come up.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from defectflow.orchestration.tasks import container_task, ingest_task, promote_task, run_stages
from defectflow.orchestration.training import report_markdown, resolve_run
from defectflow.pipeline import enforce_gate, gate_verdict
from defectflow.redact import redact_url
from defectflow.stages import check_registry


@flow(name="defectflow-training", log_prints=True)
def training_flow(data_dir: str | None = None, workdir: str | None = None, params_file: str | None = None,
                  overrides: list[str] | None = None, promote: bool = True) -> dict:
    """Train, gate, register and (if it earns it) promote a model from a data folder."""
    from prefect.runtime import flow_run

    run = resolve_run(data_dir, workdir, params_file, overrides)
    check_registry(run)  # fail before any work when the registry is down: nothing half-done
    get_run_logger().info("data %s, workdir %s, tracking %s", run.data, run.workdir.root, redact_url(run.tracking_uri))
    if run.params.get("azure.container"):
        ingest_task(run.params, run.data)
    results = run_stages(run)
    metrics, registration = results["evaluate"], results["register"]
    promotion = None
    if registration["version"] and promote:
        promotion = promote_task(run, registration, f"prefect:flow-run/{flow_run.id} ({flow_run.name})")
    gate = "passed" if gate_verdict(metrics).passed else "failed"
    create_markdown_artifact(key="training-report", markdown=report_markdown(run, metrics, registration, promotion),
                             description=f"defectflow training: gate {gate}")
    enforce_gate(metrics)
    if promotion and promotion.promoted:
        container_task(registration, run.tracking_uri)
    return {"evaluate": metrics, "register": registration, "promotion": promotion.to_dict() if promotion else None}


if __name__ == "__main__":
    from defectflow.orchestration.script import run_as_script

    run_as_script(training_flow, __doc__)
