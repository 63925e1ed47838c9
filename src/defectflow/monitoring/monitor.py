"""Score the champion on images labelled since it was trained and judge its AUC.

The data folder follows the normal data contract; it goes through the same `validate` stage
as training data (so bad images are quarantined, not scored). Only labelled, valid images
captured after the champion's training data ended count: anything older may have been
trained on and would flatter the model. Below `alerts.min_count` such images the AUC is not
judged at all (verdict `insufficient_data`) rather than alerting on noise.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from defectflow.errors import DefectflowError
from defectflow.params import AlertsParams, Params, RegisterParams, ValidateParams
from defectflow.registry.client import Registry, training_cutoff
from defectflow.registry.names import ModelVersionRef
from defectflow.workdir import Workdir

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class MonitoringResult:
    model_name: str
    model_version: str
    verdict: str                 # ok | below_threshold | insufficient_data
    auc: float | None
    n: int
    n_fail: int
    min_auc: float
    min_count: int
    since: str                   # images captured after this instant were judged
    mlflow_run_id: str | None = None

    @property
    def alert(self) -> bool:
        return self.verdict == "below_threshold"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def labelled_since(manifest: pd.DataFrame, since: dt.datetime) -> pd.DataFrame:
    """Valid, labelled rows captured strictly after `since`."""
    import pandas as pd

    captured = pd.to_datetime(manifest["captured_at"], utc=True)
    keep = (manifest["status"] == "ok") & manifest["label"].isin(["pass", "fail"]) & (captured > pd.Timestamp(since))
    return manifest[keep.fillna(False).astype(bool)]


def judge(labels: list[int], scores: list[float], alerts: AlertsParams) -> tuple[str, float | None]:
    """The verdict and AUC; no AUC below the minimum count or with a single class present."""
    import numpy as np

    from defectflow.evaluation.metrics import auc

    if len(labels) < alerts.min_count or len(set(labels)) < 2:
        return "insufficient_data", None
    value = auc(np.asarray(labels), np.asarray(scores))
    return ("below_threshold" if value < alerts.min_auc else "ok"), value


def monitor_champion(data_dir: Path, workdir: Workdir, params: Params, tracking_uri: str) -> MonitoringResult:
    """Validate `data_dir`, score the champion on what was labelled since its training, log the AUC to MLflow."""
    import mlflow

    from defectflow.validation.manifest import read_manifest
    from defectflow.validation.stage import validate

    alerts = params.section("alerts", AlertsParams)
    name = params.section("register", RegisterParams).model_name
    registry = Registry(tracking_uri)
    registry.activate()  # the monitoring run below is logged through MLflow's module-level API
    champion = registry.champion(name)
    if champion is None:
        raise DefectflowError(f"model {name!r} has no champion to monitor; promote one with `defectflow promote`")
    since = training_cutoff(champion)

    validate(Path(data_dir), workdir, params.section("validate", ValidateParams))
    rows = labelled_since(read_manifest(workdir.manifest), since)
    labels = (rows["label"] == "fail").astype(int).tolist()
    scores: list[float] = []
    if len(rows) >= alerts.min_count:
        images = [str(Path(data_dir) / p) for p in rows["path"]]
        scores = registry.fail_probabilities(ModelVersionRef(name, str(champion.version)), images)
    verdict, auc = judge(labels, scores, alerts)
    log.info("champion %s v%s on %d images labelled since %s: AUC %s → %s", name, champion.version, len(rows),
             since.isoformat(), "n/a" if auc is None else f"{auc:.4f}", verdict)

    mlflow.set_experiment(alerts.experiment)
    with mlflow.start_run(run_name=f"monitor-v{champion.version}") as run:
        mlflow.set_tags({"model_name": name, "model_version": champion.version, "verdict": verdict,
                         "since": since.isoformat(), "data_dir": str(data_dir)})
        mlflow.log_params({"min_auc": alerts.min_auc, "min_count": alerts.min_count})
        mlflow.log_metrics({"n_labelled": len(rows), "n_fail": sum(labels),
                            **({"auc": auc} if auc is not None else {})})
    return MonitoringResult(name, str(champion.version), verdict, auc, len(rows), sum(labels), alerts.min_auc,
                            alerts.min_count, since.isoformat(), run.info.run_id)
