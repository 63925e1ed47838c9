"""AUC per camera: a model can look fine pooled while one station's images are scored at chance."""

from __future__ import annotations

import pandas as pd

from defectflow.evaluation.metrics import auc

NO_CAMERA = "(none)"


def per_camera_auc(oof: pd.DataFrame) -> list[dict]:
    """Pooled out-of-fold AUC per camera_id, plus per fold; AUC is null where a camera has one class only."""
    cams = oof.assign(camera_id=oof["camera_id"].fillna(NO_CAMERA).astype(str))
    out = []
    for camera, part in cams.groupby("camera_id", sort=True):
        by_fold = {int(f): _auc_or_none(fp) for f, fp in part.groupby("fold")}
        out.append({"camera_id": camera, "n": int(len(part)), "n_fail": int(part["y"].sum()),
                    "auc": _auc_or_none(part), "fold_auc": by_fold})
    return out


def _auc_or_none(part: pd.DataFrame) -> float | None:
    if part["y"].nunique() < 2:
        return None
    return round(auc(part["y"].to_numpy(), part["p_fail"].to_numpy()), 6)
