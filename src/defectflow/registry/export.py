"""Export a registered model version as an edge bundle (`defectflow export`).

This module only resolves the registered model and reads its run's metrics; the graph, its
self-check and the bundle's files are the inference core's (`inference.bundle_export`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defectflow.errors import ConfigError
from defectflow.inference.bundle_export import export_model
from defectflow.registry.client import Registry
from defectflow.registry.names import ModelVersionRef


def export_bundle(model_uri: str, out_dir: Path, *, tracking_uri: str | None = None, check_batch: int = 4,
                  seed: int = 0) -> dict[str, Any]:
    """Export `model_uri` (models:/<name>@<alias> or models:/<name>/<version>) into `out_dir`.

    Writes model.onnx and manifest.json (last), replacing an earlier bundle in `out_dir`, after
    the graph passed its self-check against the torch backbone + LightGBM booster. Returns the
    manifest's fields and `out_dir`.
    """
    if not model_uri.startswith("models:/"):
        raise ConfigError(f"--model {model_uri!r}: export takes a registered model, models:/<name>@<alias> "
                          "or models:/<name>/<version>")
    registry = Registry(tracking_uri)
    ref = registry.resolve(model_uri)  # the alias, pinned to a version
    classifier = registry.load_model(ref).unwrap_python_model()
    run_id, metrics = _run_metrics(registry, ref)
    manifest = export_model(
        classifier.backbone, classifier.booster, classifier.spec, classifier.threshold, Path(out_dir),
        identity=dict(model_name=ref.name, model_version=str(ref.version), model_uri=ref.uri, run_id=run_id),
        metrics=metrics, anomaly_head=Path(classifier.anomaly_head) if classifier.anomaly_head else None,
        check_batch=check_batch, seed=seed)
    return {"out_dir": str(out_dir), **manifest.to_dict()}


def _run_metrics(registry: Registry, ref: ModelVersionRef) -> tuple[str, dict[str, float]]:
    """The model version's run id and its AUC metrics (what /v1/model reports)."""
    run_id = registry.client.get_model_version(ref.name, ref.version).run_id or ""
    if not run_id:
        return "", {}
    metrics = registry.client.get_run(run_id).data.metrics
    return run_id, {k: float(v) for k, v in sorted(metrics.items()) if "auc" in k.lower()}
