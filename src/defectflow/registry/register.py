"""The register stage: log the run to MLflow; when the gate passed, log the pyfunc, register a
version and point the `challenger` alias at it. Promotion to champion is a separate step."""

from __future__ import annotations

import json
import logging
import tempfile
from importlib.metadata import version
from pathlib import Path

from defectflow import atomic
from defectflow.errors import DefectflowError
from defectflow.params import FeaturizeParams, Params, RegisterParams
from defectflow.redact import redact_url
from defectflow.registry.client import Registry
from defectflow.registry.lineage import lineage
from defectflow.registry.names import CHALLENGER, GATE_TAG, MEAN_AUC_TAG, RUN_ID_TAG, THRESHOLD_TAG, TRAINED_UNTIL_TAG
from defectflow.registry.tracking import use_experiment
from defectflow.workdir import Workdir

log = logging.getLogger(__name__)
# Exact pins of what the pyfunc imports: inferring them is slow and picks the wrong torch build.
PYFUNC_PACKAGES = ["mlflow", "torch", "torchvision", "efficientnet-lite-pytorch", "lightgbm", "numpy", "pandas",
                   "pillow", "pyyaml", "onnxruntime"]


def pip_requirements() -> list[str]:
    return [f"{name}=={version(name).split('+')[0]}" for name in PYFUNC_PACKAGES]


def _bundle(workdir: Workdir, featurize: FeaturizeParams, seed: int, threshold: float, tmp: Path) -> dict[str, str]:
    """Write the pyfunc's artifacts (backbone weights, booster, spec) into `tmp`."""
    import torch

    from defectflow.features.backbones import build_backbone
    from defectflow.features.tuned import finetune_record

    spec = json.loads(workdir.model_spec.read_text())
    tuned = finetune_record(workdir)  # featurize.mode=finetune: the weights fine-tuned on all labelled rows
    weights = tuned["weights_path"] if tuned else featurize.weights
    model, backbone_spec = build_backbone(featurize.backbone, weights, featurize.image_size, seed)
    if backbone_spec.featurizer_id != spec["featurizer"]["featurizer_id"]:
        raise DefectflowError(
            f"the model was trained on features from {spec['featurizer']['featurizer_id']} but params now "
            f"describe {backbone_spec.featurizer_id}: re-run featurize and train, or restore the featurize params"
        )
    torch.save(model.state_dict(), tmp / "backbone.pt")
    (tmp / "booster.txt").write_text(workdir.booster.read_text())
    (tmp / "spec.json").write_text(json.dumps({**spec, "threshold": threshold}, indent=2))
    artifacts = {"backbone": str(tmp / "backbone.pt"), "booster": str(tmp / "booster.txt"),
                 "spec": str(tmp / "spec.json")}
    if workdir.anomaly_head.is_file():  # the anomaly head (defectflow explain reads it)
        artifacts["anomaly"] = str(workdir.anomaly_head)
    return artifacts


def _log_evidence(workdir: Workdir, metrics: dict) -> None:
    import mlflow

    mlflow.log_metrics({k: metrics[k] for k in ("mean_auc", "min_auc", "threshold", "review_reduction", "fail_recall")})
    for fold in metrics["folds"]:
        mlflow.log_metric("fold_auc", fold["auc"], step=fold["fold"])
    for path in (workdir.cv_metrics, workdir.folds, workdir.validation_report, workdir.gx_report,
                 workdir.features_spec, workdir.model_spec):
        if path.exists():
            mlflow.log_artifact(str(path), artifact_path="evidence")
    if workdir.plots.exists():
        mlflow.log_artifacts(str(workdir.plots), artifact_path="plots")


def register_model(data_dir: Path, workdir: Workdir, params: Params) -> dict:
    """Log params, metrics, plots, reports and lineage; register the model if the gate passed."""
    import mlflow

    reg = params.section("register", RegisterParams)
    featurize = params.section("featurize", FeaturizeParams)
    if not workdir.cv_metrics.exists():
        raise DefectflowError(f"{workdir.cv_metrics} not found: run `defectflow evaluate` first")
    metrics = json.loads(workdir.cv_metrics.read_text())
    gate = metrics["gate"]
    uri = use_experiment(reg, workdir)
    result: dict = {"tracking_uri": redact_url(uri), "model_name": reg.model_name, "gate_passed": gate["passed"],
                    "version": None, "model_uri": None}
    with mlflow.start_run() as run:
        result["run_id"] = run.info.run_id
        mlflow.log_params({k: str(v)[:500] for k, v in params.flat().items()})
        mlflow.set_tags({**lineage(data_dir, workdir), GATE_TAG: str(gate["passed"]).lower(),
                         "gate_reasons": "; ".join(gate["reasons"])})
        _log_evidence(workdir, metrics)
        if gate["passed"]:
            with tempfile.TemporaryDirectory() as tmp:
                artifacts = _bundle(workdir, featurize, params.seed, metrics["threshold"], Path(tmp))
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(Path(__file__).with_name("model_code.py")),
                    artifacts=artifacts,
                    code_paths=[str(Path(__file__).resolve().parents[1])],
                    pip_requirements=pip_requirements(),
                    registered_model_name=reg.model_name,
                )
            version_id = str(info.registered_model_version)
            registry = Registry(uri)
            trained_until = json.loads(workdir.model_spec.read_text())["trained_until"]
            registry.tag_version(reg.model_name, version_id, {
                GATE_TAG: "true", MEAN_AUC_TAG: f"{metrics['mean_auc']:.6f}",
                THRESHOLD_TAG: f"{metrics['threshold']:.6f}", RUN_ID_TAG: run.info.run_id,
                TRAINED_UNTIL_TAG: trained_until})
            registry.set_alias(reg.model_name, CHALLENGER, version_id)
            result.update(version=version_id, model_uri=f"models:/{reg.model_name}/{version_id}")
            log.info("registered %s version %s (alias %s)", reg.model_name, version_id, CHALLENGER)
    atomic.write_json(workdir.registration, result)
    return result
