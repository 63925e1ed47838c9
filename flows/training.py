"""The training flow: (ingest →) validate → featurize → train → evaluate → register → promote
(→ build and push the serving container).

Thin by design: every task calls the stage function the CLI and `dvc repro` also call. What
the flow adds is orchestration: retries where I/O can fail, cache keys from the content of
each stage's inputs (a re-run after a crash resumes at the first unfinished stage), log
lines, a Markdown artifact, and clear failure states.

Run it on the embedded defaults with Prefect's ephemeral API:  python flows/training.py
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
from prefect.context import TaskRunContext

from defectflow.errors import DefectflowError, GateFailedError, PromotionRefusedError
from defectflow.orchestration.cache_keys import data_folder_digest, file_digest, stage_key
from defectflow.params import (AzureParams, EvaluateParams, ExecutorParams, FeaturizeParams, GateParams, Params,
                               PromoteParams, RegisterParams, TrainParams, ValidateParams)
from defectflow.params import AnomalyParams
from defectflow.workdir import Workdir

IO_RETRIES = dict(retries=2, retry_delay_seconds=[5, 30])


def _key(fn):
    """Adapt a (parameters → key) function to Prefect's cache_key_fn signature."""
    def cache_key_fn(context: TaskRunContext, parameters: dict) -> str:
        return fn(**parameters)
    return cache_key_fn


def _validate_key(data_dir: Path, workdir: Workdir, params: Params) -> str:
    return stage_key("validate", data_folder_digest(data_dir), str(workdir.root.resolve()),
                     params.section("validate", ValidateParams))


def _featurize_key(data_dir: Path, workdir: Workdir, params: Params) -> str:
    return stage_key("featurize", file_digest(workdir.manifest), str(workdir.root.resolve()),
                     params.section("featurize", FeaturizeParams), params.section("anomaly", AnomalyParams),
                     params.seed)


def _train_key(workdir: Workdir, params: Params) -> str:
    return stage_key("train", file_digest(workdir.manifest), file_digest(workdir.features),
                     str(workdir.root.resolve()), params.section("train", TrainParams),
                     params.section("anomaly", AnomalyParams), params.seed)


def _evaluate_key(workdir: Workdir, params: Params) -> str:
    return stage_key("evaluate", file_digest(workdir.oof_predictions), file_digest(workdir.folds),
                     str(workdir.root.resolve()), params.section("evaluate", EvaluateParams),
                     params.section("gate", GateParams))


def _register_key(data_dir: Path, workdir: Workdir, params: Params, tracking_uri: str) -> str:
    # Registering twice would create a second version of the same model: a resumed run reuses the first.
    return stage_key("register", file_digest(workdir.cv_metrics), file_digest(workdir.model_dir),
                     str(workdir.root.resolve()), params.section("register", RegisterParams), tracking_uri)


def _fresh(*outputs: Path) -> bool:
    """Refresh a cached task when its outputs are gone (a wiped workdir must be rebuilt, not trusted)."""
    return not all(p.exists() for p in outputs)


@task(name="ingest", **IO_RETRIES)
def ingest_task(params: Params, data_dir: Path) -> Path:
    """Copy new images and labels from Azure Blob into the data folder (idempotent; Blob is the source of truth)."""
    from defectflow.azure.ingest import ingest_from_blob

    azure = params.section("azure", AzureParams)
    summary = ingest_from_blob(data_dir, azure.container, azure.prefix, azure, progress=False)
    if not summary["ok"]:
        raise DefectflowError(f"ingest from container {azure.container!r} was incomplete (rejected or failed blobs); "
                              "see the ingest summary in the task log, fix them and re-run: completed downloads are kept")
    get_run_logger().info("ingest: %s new, %s adopted into %s", summary["downloaded"], summary["adopted"], data_dir)
    return data_dir


@task(name="validate", cache_key_fn=_key(_validate_key), persist_result=True, **IO_RETRIES)
def validate_task(data_dir: Path, workdir: Workdir, params: Params) -> dict:
    from defectflow.validation.stage import validate

    summary = validate(data_dir, workdir, params.section("validate", ValidateParams))
    get_run_logger().info("validate: %s", {k: v for k, v in summary.items() if not isinstance(v, (list, dict))})
    return summary


@task(name="featurize", cache_key_fn=_key(_featurize_key), persist_result=True, **IO_RETRIES)
def featurize_task(data_dir: Path, workdir: Workdir, params: Params) -> dict:
    from defectflow.features.stage import featurize

    summary = featurize(data_dir, workdir, params.section("featurize", FeaturizeParams), params.seed, progress=False,
                        executor=params.section("executor", ExecutorParams),
                        anomaly=params.section("anomaly", AnomalyParams))
    get_run_logger().info("featurize: %d images, %d computed, %d from cache (%s img/s on %s)", summary["n_images"],
                          summary["n_computed"], summary["n_cached"], summary["images_per_s"], summary["device"])
    return summary


@task(name="train", cache_key_fn=_key(_train_key), persist_result=True)
def train_task(workdir: Workdir, params: Params) -> dict:
    from defectflow.training.stage import train

    summary = train(workdir, params.section("train", TrainParams), params.seed,
                    executor=params.section("executor", ExecutorParams),
                    anomaly=params.section("anomaly", AnomalyParams))
    get_run_logger().info("train: %d labelled images, %d folds, final model %d rounds", summary["n_labelled"],
                          len(summary["folds"]), summary["final_rounds"])
    return summary


@task(name="evaluate", cache_key_fn=_key(_evaluate_key), persist_result=True)
def evaluate_task(workdir: Workdir, params: Params) -> dict:
    from defectflow.evaluation.stage import evaluate

    metrics = evaluate(workdir, params.section("evaluate", EvaluateParams), params.section("gate", GateParams))
    get_run_logger().info("evaluate: mean AUC %.4f, min fold AUC %.4f, gate %s", metrics["mean_auc"],
                          metrics["min_auc"], "passed" if metrics["gate"]["passed"] else "FAILED")
    return metrics


@task(name="register", cache_key_fn=_key(_register_key), persist_result=True, **IO_RETRIES)
def register_task(data_dir: Path, workdir: Workdir, params: Params, tracking_uri: str) -> dict:
    from defectflow.registry.register import register_model

    result = register_model(data_dir, workdir, params)
    get_run_logger().info("register: run %s, version %s", result["run_id"], result["version"] or "none (gate failed)")
    return result


@task(name="promote", **IO_RETRIES)
def promote_task(data_dir: Path, workdir: Workdir, params: Params, registration: dict, tracking_uri: str,
                 decided_by: str) -> dict:
    """Champion/challenger decision; a refusal is an outcome (recorded in MLflow), not a flow failure."""
    from mlflow import MlflowClient

    from defectflow.registry.promote import newest_window, promote

    logger = get_run_logger()
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        decision = promote(client, registration["model_name"], registration["version"],
                           params.section("promote", PromoteParams), decided_by, newest_window(data_dir, workdir))
    except PromotionRefusedError as exc:
        logger.warning("promotion refused: %s", exc)
        return {"action": "refused", "version": registration["version"], "reasons": [str(exc)],
                "previous_champion": None}
    logger.info("promotion: %s v%s (previous champion %s)", decision.action, decision.version,
                decision.previous_champion or "none")
    return {"action": decision.action, "version": decision.version, "reasons": list(decision.reasons),
            "previous_champion": decision.previous_champion, "metrics": decision.metrics}


@task(name="container")
def container_task(registration: dict, tracking_uri: str) -> dict | None:
    """Build, smoke-test and push the serving image when a Docker engine is configured ($DOCKER_HOST).

    The image registry comes from $DEFECTFLOW_IMAGE_REGISTRY (site configuration, like the
    engine); without it the image is built and smoke-tested but not pushed.
    """
    logger = get_run_logger()
    if not os.environ.get("DOCKER_HOST"):
        logger.info("container: skipped (no Docker engine configured: set DOCKER_HOST to build and push the image)")
        return None
    from defectflow.packaging.image import ship_model_image

    registry = os.environ.get("DEFECTFLOW_IMAGE_REGISTRY")
    shipped = ship_model_image(repository=registration["model_name"], model_uri=registration["model_uri"],
                               registry=registry, push=bool(registry), tracking_uri=tracking_uri)
    logger.info("container: %s%s", shipped.reference,
                f" pushed as {shipped.pushed_reference}" if shipped.pushed_reference else " (not pushed: no registry)")
    return shipped.to_dict()


@flow(name="defectflow-training", log_prints=True)
def training_flow(data_dir: str | None = None, workdir: str | None = None, params_file: str | None = None,
                  overrides: list[str] | None = None, promote: bool = True) -> dict:
    """Train, gate, register and (if it earns it) promote a model from a data folder."""
    from prefect.runtime import flow_run

    from defectflow.orchestration.report import mlflow_run_link, training_report
    from defectflow.redact import redact_url
    from defectflow.registry.tracking import tracking_reachable, tracking_uri

    logger = get_run_logger()
    params = Params.load(params_file, overrides or [])
    data = params.data.data_dir(data_dir)
    wd = Workdir(params.data.work_dir(workdir))
    uri = tracking_uri(params.section("register", RegisterParams), wd)
    tracking_reachable(uri)  # fail before any work when the registry is down: nothing half-done
    logger.info("data %s, workdir %s, tracking %s", data, wd.root, redact_url(uri))

    if params.get("azure.container"):
        data = ingest_task(params, data)
    validate_task.with_options(refresh_cache=_fresh(wd.manifest))(data, wd, params)
    featurize_task.with_options(refresh_cache=_fresh(wd.features))(data, wd, params)
    train_task.with_options(refresh_cache=_fresh(wd.model_dir / "booster.txt", wd.oof_predictions))(wd, params)
    metrics = evaluate_task.with_options(refresh_cache=_fresh(wd.cv_metrics))(wd, params)
    registration = register_task.with_options(refresh_cache=_fresh(wd.registration))(data, wd, params, uri)

    promotion = None
    if registration["version"] and promote:
        promotion = promote_task(data, wd, params, registration, uri, f"prefect:flow-run/{flow_run.id} ({flow_run.name})")
    experiment = _experiment_id(uri, params)
    create_markdown_artifact(
        key="training-report",
        markdown=training_report(metrics, registration, promotion, mlflow_run_link(uri, registration["run_id"], experiment)),
        description=f"defectflow training: gate {'passed' if metrics['gate']['passed'] else 'failed'}",
    )
    if not metrics["gate"]["passed"]:
        from defectflow.pipeline import gate_message

        raise GateFailedError(gate_message(metrics))
    if promotion and promotion["action"] == "promoted":
        container_task(registration, uri)
    return {"evaluate": metrics, "register": registration, "promotion": promotion}


def _experiment_id(uri: str, params: Params) -> str | None:
    from mlflow import MlflowClient

    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name(params.section("register", RegisterParams).experiment)
    return exp.experiment_id if exp else None


if __name__ == "__main__":
    from defectflow.orchestration.script import run_as_script

    run_as_script(training_flow, __doc__)
