"""Which model scores a batch, and under what identity its results are stored.

Two kinds of model are accepted:
- a registered MLflow model, `models:/<name>@<alias>` or `models:/<name>/<version>`, scored with
  its pyfunc (`predict(DataFrame({"image": paths}))` → fail_probability, decision, reason);
- an ONNX edge bundle folder written by `defectflow export`, scored with the edge runtime
  (onnxruntime only).
Both apply the novelty rule when the model has the anomaly head: `decision` is fail when the
classifier flags the image or its anomaly score is novel (`anomaly.novelty`), and that decision is
what the results database stores. The reason itself is not stored (the scores table has no column
for it, and `create_all` does not add columns to an existing database); a stored fail whose
probability is under the model's threshold was sent to review by the novelty rule.
The identity (name, version) is resolved first and cheaply, so a run with nothing new to
score never loads the model at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from defectflow.errors import ConfigError
from defectflow.registry.client import Registry

OUTPUT_COLUMNS = ("fail_probability", "decision")


class Predictor(Protocol):
    def predict(self, frame: pd.DataFrame) -> pd.DataFrame: ...


@dataclass
class Scorer:
    """A model identity plus a lazily loaded predictor."""

    name: str
    version: str
    uri: str
    _load: Any = field(repr=False)
    _predictor: Predictor | None = field(default=None, repr=False)

    def predict(self, paths: list[Path]) -> pd.DataFrame:
        """fail_probability and decision for each path, in order."""
        if self._predictor is None:
            self._predictor = self._load()
        out = self._predictor.predict(pd.DataFrame({"image": [str(p) for p in paths]}))
        missing = [c for c in OUTPUT_COLUMNS if c not in out.columns]
        if missing or len(out) != len(paths):
            raise ConfigError(
                f"model {self.uri} returned {len(out)} rows with columns {list(out.columns)} for {len(paths)} "
                f"images; a defectflow model returns one row per image with {', '.join(OUTPUT_COLUMNS)}"
            )
        return out.reset_index(drop=True)


def load_scorer(uri: str, tracking_uri: str | None = None) -> Scorer:
    """Resolve `uri` (models:/… or an edge bundle folder) to a Scorer; the model loads on first use."""
    if uri.startswith("models:/"):
        return _registry_scorer(uri, tracking_uri)
    folder = Path(uri)
    if folder.is_dir():
        return _edge_scorer(folder)
    raise ConfigError(
        f"model {uri!r} is neither a registry URI (models:/<name>@<alias> or models:/<name>/<version>) "
        "nor an existing ONNX bundle folder (written by `defectflow export`)"
    )


def _registry_scorer(uri: str, tracking_uri: str | None) -> Scorer:
    registry = Registry(tracking_uri)
    ref = registry.resolve(uri)  # pinned: an alias moving mid-run must not mix models
    return Scorer(name=ref.name, version=ref.version, uri=ref.uri, _load=lambda: registry.load_model(ref))


def _edge_scorer(folder: Path) -> Scorer:
    from defectflow.inference.bundle_manifest import BundleError, EdgeManifest

    try:
        manifest = EdgeManifest.read(folder)
    except BundleError as exc:
        raise ConfigError(f"model {folder}: {exc}") from None

    def load() -> Predictor:
        from defectflow.inference.bundle import EdgeModel

        try:
            return EdgeModel(folder)
        except BundleError as exc:
            raise ConfigError(f"model {folder}: {exc}") from None

    return Scorer(name=manifest.model_name, version=str(manifest.model_version), uri=str(folder), _load=load)
