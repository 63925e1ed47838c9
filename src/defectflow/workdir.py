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
    def validation_report(self) -> Path:
        return self.root / "reports" / "validation.json"

    @property
    def gx_report(self) -> Path:
        """Great Expectations results rendered as a page people can open."""
        return self.root / "reports" / "gx_validation.html"

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
        return self.root / "model"

    @property
    def oof_predictions(self) -> Path:
        """Out-of-fold predictions of the time-split cross-validation."""
        return self.root / "cv" / "oof.parquet"

    @property
    def folds(self) -> Path:
        return self.root / "cv" / "folds.json"

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
