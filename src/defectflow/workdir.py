"""Where each stage writes inside a work directory: one place to look up every path.

Each file has exactly one writer (the stage named beside it); later stages only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workdir:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    # validate
    @property
    def manifest(self) -> Path:
        return self.root / "manifest.parquet"

    @property
    def reports(self) -> Path:
        """The validation reports: `validation_report`, `gx_report` and the raw Great Expectations results."""
        return self.root / "reports"

    @property
    def validation_report(self) -> Path:
        return self.reports / "validation.json"

    @property
    def gx_report(self) -> Path:
        """Great Expectations results rendered as a page people can open."""
        return self.reports / "gx_validation.html"

    # featurize
    @property
    def feature_store(self) -> Path:
        """Content-addressed cache shared across runs (kept by DVC with persist: true)."""
        return self.root / "feature_store"

    @property
    def features(self) -> Path:
        """Feature matrix: one row per distinct usable image (sha256 + feature columns)."""
        return self.root / "features.parquet"

    @property
    def features_spec(self) -> Path:
        """The featurizer that made `features` (backbone, weights id, preprocessing) + run summary."""
        return self.root / "features.json"

    # train
    @property
    def model_dir(self) -> Path:
        """The final model: `booster`, `model_spec` and, with the anomaly head on, `anomaly_head`."""
        return self.root / "model"

    @property
    def booster(self) -> Path:
        """The final LightGBM model (LightGBM's text format)."""
        return self.model_dir / "booster.txt"

    @property
    def model_spec(self) -> Path:
        """What the booster was trained on: featurizer spec, rounds, training cutoff, seed."""
        return self.model_dir / "spec.json"

    @property
    def anomaly_head(self) -> Path:
        """The anomaly head fitted beside the booster (only when `anomaly.enabled`)."""
        return self.model_dir / "anomaly.npz"

    @property
    def cv_dir(self) -> Path:
        """The cross-validation outputs: `oof_predictions` and `folds`."""
        return self.root / "cv"

    @property
    def oof_predictions(self) -> Path:
        """Out-of-fold predictions of the time-split cross-validation."""
        return self.cv_dir / "oof.parquet"

    @property
    def folds(self) -> Path:
        return self.cv_dir / "folds.json"

    # evaluate
    @property
    def cv_metrics(self) -> Path:
        return self.root / "metrics" / "cv.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    # register
    @property
    def registration(self) -> Path:
        return self.root / "registered.json"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    # outside the training pipeline
    @property
    def monitoring(self) -> Workdir:
        """The champion monitor's own work directory (its validate/featurize outputs stay apart from training's)."""
        return Workdir(self.root / "monitoring")

    @property
    def drift_history(self) -> Path:
        """Every drift check's per-camera results (monitoring.drift_history), appended by each check."""
        return self.root / "drift_history.jsonl"

    @property
    def blob_cache(self) -> Path:
        """Where batch scoring downloads azure:// inputs when `score.blob_cache` is not set."""
        return self.root / "blob-cache"

    @property
    def results_db(self) -> Path:
        """The SQLite results store used when no results URL is configured."""
        return self.root / "results.db"
