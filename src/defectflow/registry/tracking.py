"""Which MLflow tracking server or database to talk to, and the experiment to log into."""

from __future__ import annotations

import os

from defectflow.params import RegisterParams
from defectflow.workdir import Workdir


def tracking_uri(params: RegisterParams, workdir: Workdir) -> str:
    """$MLFLOW_TRACKING_URI wins (deployments set it), then params, then a SQLite file in the workdir."""
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking_uri or f"sqlite:///{workdir.mlflow_db.resolve()}"


def use_experiment(params: RegisterParams, workdir: Workdir) -> str:
    """Point mlflow at the tracking URI and experiment; a local store keeps artifacts in the workdir."""
    import mlflow

    uri = tracking_uri(params, workdir)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # register where we track, whatever an earlier call in this process set
    if mlflow.get_experiment_by_name(params.experiment) is None:
        local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
        location = workdir.mlflow_artifacts.resolve().as_uri() if local else None
        mlflow.create_experiment(params.experiment, artifact_location=location)
    mlflow.set_experiment(params.experiment)
    return uri
