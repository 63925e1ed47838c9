"""The whole training pipeline, stage after stage, as plain function calls (the CLI and the
Prefect flow both drive these same functions)."""

from __future__ import annotations

from pathlib import Path

from defectflow.errors import GateFailedError
from defectflow.params import (EvaluateParams, ExecutorParams, FeaturizeParams, GateParams, Params, RegisterParams,
                               TrainParams, ValidateParams)
from defectflow.params import AnomalyParams
from defectflow.workdir import Workdir


def run_pipeline(data_dir: Path, workdir: Workdir, params: Params, progress: bool = True) -> dict:
    """validate → featurize → train → evaluate → register; raises GateFailedError (after logging
    the run, so the evidence is kept) when the gate fails."""
    from defectflow.evaluation.stage import evaluate
    from defectflow.features.stage import featurize
    from defectflow.registry.register import register_model
    from defectflow.registry.tracking import tracking_reachable, tracking_uri
    from defectflow.training.stage import train
    from defectflow.validation.stage import validate

    # The registry is the last stage's target: find out it is down before spending minutes on features.
    tracking_reachable(tracking_uri(params.section("register", RegisterParams), workdir))
    summary = {"data_dir": str(data_dir), "workdir": str(workdir.root)}
    summary["validate"] = validate(data_dir, workdir, params.section("validate", ValidateParams))
    executor, anomaly = params.section("executor", ExecutorParams), params.section("anomaly", AnomalyParams)
    summary["featurize"] = featurize(data_dir, workdir, params.section("featurize", FeaturizeParams), params.seed,
                                     progress=progress, executor=executor, anomaly=anomaly)
    summary["train"] = train(workdir, params.section("train", TrainParams), params.seed, executor=executor,
                             anomaly=anomaly)
    summary["evaluate"] = evaluate(workdir, params.section("evaluate", EvaluateParams),
                                   params.section("gate", GateParams))
    summary["register"] = register_model(data_dir, workdir, params)
    if not summary["evaluate"]["gate"]["passed"]:
        raise GateFailedError(gate_message(summary["evaluate"]), summary)
    return summary


def gate_message(metrics: dict) -> str:
    return "gate failed, the model was not registered: " + "; ".join(metrics["gate"]["reasons"])
