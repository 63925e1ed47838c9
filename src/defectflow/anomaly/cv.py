"""The anomaly head inside time-split cross-validation: fitted on each window's pass images only.

`AnomalyCV.fit(window_idx, y)` fits the patch model on the `pass` rows of one training window
and returns a `WindowAnomaly` that can score any other rows (the fold's future test rows). The
window's own rows get out-of-sample scores by cross-fitting over boards (each board scored by
a model fitted on the window's other boards): an image inside the memory bank would score ~0,
so in-sample scores would teach LightGBM, and the novelty quantile, the wrong scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from defectflow.anomaly.inputs import booster_input
from defectflow.anomaly.maps import image_scores
from defectflow.anomaly.models import PatchModel, fit_patch_model, save_model
from defectflow.anomaly.store import PatchStore
from defectflow.anomaly.taps import resolve_layer
from defectflow.errors import DefectflowError
from defectflow.params import AnomalyParams
from defectflow.workdir import Workdir

FEATURE_NAME = "anomaly_score"


@dataclass
class AnomalyCV:
    """Patch vectors of the training table's rows (read from the store in chunks) + the params."""

    store: PatchStore
    shas: np.ndarray    # row → image sha256
    groups: np.ndarray  # row → board id (cross-fitting never splits a board)
    params: AnomalyParams
    seed: int
    chunk: int = 256

    @classmethod
    def for_table(cls, workdir: Workdir, meta: pd.DataFrame, params: AnomalyParams, seed: int) -> AnomalyCV:
        """The training table's patch vectors, from the store the featurize stage filled."""
        spec = json.loads(workdir.features_spec.read_text())["spec"]
        store = PatchStore(workdir.feature_store, spec["featurizer_id"], resolve_layer(spec["name"], params.layer))
        missing = store.missing(meta["sha256"])
        if missing:
            raise DefectflowError(f"{len(missing)} images have no patch vectors in {store.dir}: re-run "
                                  "`defectflow featurize` with anomaly.enabled=true (or set it false for train)")
        return cls(store, meta["sha256"].to_numpy(), meta["board_id"].astype(str).to_numpy(), params, seed)

    def _chunks(self, rows: np.ndarray):
        shas = list(self.shas[rows])
        return lambda: self.store.chunks(shas, self.chunk)

    def _fit(self, rows: np.ndarray) -> PatchModel:
        p = self.params
        return fit_patch_model(p.method, self._chunks(rows), len(rows), coreset_size=p.coreset_size,
                               max_candidates=p.max_candidates, seed=self.seed)

    def scores(self, model: PatchModel, rows: np.ndarray) -> np.ndarray:
        """Image anomaly scores of `rows` under `model`."""
        out = [image_scores(model.patch_scores(c)) for c in self._chunks(rows)()]
        return np.concatenate(out) if out else np.empty(0)

    def fit(self, window: np.ndarray, y: np.ndarray) -> WindowAnomaly:
        """Fit on the pass rows of `window`; cross-fitted scores for every row of `window`."""
        good = window[y[window] == 0]
        model = self._fit(good)
        boards = pd.unique(self.groups[window])
        part_of_board = dict(zip(boards, np.random.default_rng(self.seed).permutation(len(boards))
                                 % max(self.params.cross_fit, 2), strict=True))
        part = np.array([part_of_board[g] for g in self.groups[window]])
        window_scores = np.empty(len(window))
        for k in np.unique(part):
            held_out = part == k
            fitted = self._fit(good[~np.isin(good, window[held_out])])
            window_scores[held_out] = self.scores(fitted, window[held_out])
        threshold = float(np.quantile(window_scores[y[window] == 0], self.params.novelty_quantile))
        return WindowAnomaly(self, model, window, window_scores, threshold, n_good=len(good))


@dataclass
class WindowAnomaly:
    """The patch model of one training window, its rows' out-of-sample scores and novelty threshold."""

    cv: AnomalyCV
    model: PatchModel
    window: np.ndarray
    window_scores: np.ndarray
    threshold: float
    n_good: int

    def features(self, X: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(X for LightGBM, the score column): X gains the score column when `as_feature` is on;
        rows outside the window and `test` get NaN (they are never used by this fold)."""
        column = np.full(len(X), np.nan)
        column[self.window] = self.window_scores
        column[test] = self.cv.scores(self.model, test)
        return booster_input(X, column if self.cv.params.as_feature else None), column

    def annotate(self, part: pd.DataFrame, test_scores: np.ndarray) -> pd.DataFrame:
        """Add the novelty columns to a fold's out-of-fold rows."""
        part[FEATURE_NAME] = test_scores
        part["novelty_threshold"] = self.threshold
        part["novel"] = test_scores > self.threshold
        return part

    def save(self, path: Path, layer: str, image_size: int) -> dict:
        """Write the model beside the booster; returns what model/spec.json records about it."""
        meta = {"layer": layer, "threshold": self.threshold, "image_size": image_size,
                "as_feature": self.cv.params.as_feature, "novelty_quantile": self.cv.params.novelty_quantile,
                "n_good": self.n_good, "feature_name": FEATURE_NAME}
        save_model(self.model, path, meta)
        return {**meta, "method": type(self.model).__name__.lower(), "file": path.name, "bytes": self.model.nbytes}
