"""The training flow's Prefect tasks: one per declared stage (defectflow.stages), plus ingest,
promotion and the serving container.

Each stage task calls the stage function the CLI and `dvc repro` also call; what the task adds
is orchestration: retries where I/O can fail, a cache key from the content of the stage's
declared inputs (a re-run after a crash resumes at the first unfinished stage), a log line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.context import TaskRunContext

from defectflow.errors import DefectflowError
from defectflow.orchestration.cache_keys import stage_cache_key
from defectflow.orchestration.training import PromotionOutcome, decide_promotion
from defectflow.params import AzureParams, Params
from defectflow.stages import STAGES, Stage, StageRun

IO_RETRIES: dict[str, Any] = dict(retries=2, retry_delay_seconds=[5, 30])


def stage_task(stage: Stage) -> Task:
    """A cached Prefect task that runs `stage` on a StageRun and logs its summary."""

    def run_stage(run: StageRun) -> dict[str, Any]:
        result = stage.run(run)
        get_run_logger().info("%s", stage.describe(result))
        return result

    def cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
        return stage_cache_key(stage, parameters["run"])

    run_stage.__name__ = run_stage.__qualname__ = f"{stage.name}_task"
    return task(run_stage, name=stage.name, cache_key_fn=cache_key, persist_result=True,
                **(IO_RETRIES if stage.io else {}))


STAGE_TASKS: dict[str, Task] = {stage.name: stage_task(stage) for stage in STAGES}


def run_stages(run: StageRun) -> dict[str, dict[str, Any]]:
    """Every stage in order, each from its cache when its inputs are unchanged and its outputs still there
    (a wiped work directory must be rebuilt, not trusted)."""
    return {stage.name: STAGE_TASKS[stage.name].with_options(refresh_cache=not stage.outputs_exist(run.workdir))(run)
            for stage in STAGES}


@task(name="ingest", **IO_RETRIES)
def ingest_task(params: Params, data_dir: Path) -> Path:
    """Copy new images and labels from Azure Blob into the data folder (idempotent; Blob is the source of truth)."""
    from defectflow.azure.ingest import ingest_from_blob

    azure = params.section("azure", AzureParams)
    summary = ingest_from_blob(data_dir, azure.container, azure.prefix, azure, progress=False)
    if not summary["ok"]:
        raise DefectflowError(f"ingest from container {azure.container!r} was incomplete (rejected or failed blobs); "
                              "see the ingest summary in the task log, fix them and re-run: "
                              "completed downloads are kept")
    get_run_logger().info("ingest: %s new, %s adopted into %s", summary["downloaded"], summary["adopted"], data_dir)
    return data_dir


@task(name="promote", **IO_RETRIES)
def promote_task(run: StageRun, registration: dict[str, Any], decided_by: str) -> PromotionOutcome:
    """Champion/challenger decision; a refusal is an outcome (recorded in MLflow), not a flow failure."""
    logger = get_run_logger()
    outcome = decide_promotion(run, registration, decided_by)
    if outcome.action == "refused":
        logger.warning("promotion refused: %s", outcome.reasons[0])
    else:
        logger.info("promotion: %s v%s (previous champion %s)", outcome.action, outcome.version,
                    outcome.previous_champion or "none")
    return outcome


@task(name="container")
def container_task(registration: dict[str, Any], tracking_uri: str) -> dict[str, Any] | None:
    """Build, smoke-test and push the serving image when a Docker engine is configured ($DOCKER_HOST).

    The rest is site configuration too, so the flow's parameters stay the same on every site:
    $DEFECTFLOW_IMAGE_REGISTRY (without it the image is built and smoke-tested but not pushed)
    and $DEFECTFLOW_BASE_IMAGE (the FROM image; without it one is made with debootstrap).
    """
    logger = get_run_logger()
    if not os.environ.get("DOCKER_HOST"):
        logger.info("container: skipped (no Docker engine configured: set DOCKER_HOST to build and push the image)")
        return None
    from defectflow.packaging.image import BASE_FROM_DEBOOTSTRAP, ship_model_image

    registry = os.environ.get("DEFECTFLOW_IMAGE_REGISTRY")
    shipped = ship_model_image(repository=registration["model_name"], model_uri=registration["model_uri"],
                               registry=registry, push=bool(registry), tracking_uri=tracking_uri,
                               base_image=os.environ.get("DEFECTFLOW_BASE_IMAGE") or BASE_FROM_DEBOOTSTRAP)
    logger.info("container: %s%s", shipped.reference,
                f" pushed as {shipped.pushed_reference}" if shipped.pushed_reference else " (not pushed: no registry)")
    return shipped.to_dict()
