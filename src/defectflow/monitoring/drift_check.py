"""Run the drift check on a data folder: validate, featurize (feature + patch vectors, one pass,
content-addressed so known images cost nothing), score the anomaly head, take image statistics,
and compare each camera's last window with the reference window (monitoring.drift).

The reference window is every image captured up to `reference_until` (the champion's training
cutoff in the monitoring flow). The anomaly head is fitted on the reference's images that are
not labelled `fail` (labels are not needed); reference images get cross-fitted scores, so they
are on the same scale as new ones.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from defectflow import atomic
from defectflow.errors import DefectflowError
from defectflow.monitoring.drift import CameraDrift, drift_by_camera, statistics_of
from defectflow.monitoring.drift_history import append_history
from defectflow.params import AnomalyParams, DriftParams, FeaturizeParams, Params, ValidateParams
from defectflow.workdir import Workdir

log = logging.getLogger(__name__)


def drift_table(data_dir: Path, workdir: Workdir, params: Params) -> tuple[pd.DataFrame, np.ndarray]:
    """Valid images (one row per content) with capture time, camera, path and label, plus their embeddings."""
    from defectflow.features.stage import featurize
    from defectflow.validation.stage import validate

    # Class balance is a training requirement; drift is judged on images that may have no label at all.
    checks = dataclasses.replace(params.section("validate", ValidateParams), min_class_share=0.0)
    validate(Path(data_dir), workdir, checks)
    anomaly = params.section("anomaly", AnomalyParams)
    featurize(Path(data_dir), workdir, params.section("featurize", FeaturizeParams), params.seed, progress=False,
              anomaly=dataclasses.replace(anomaly, enabled=True))
    manifest = pd.read_parquet(workdir.manifest)
    rows = manifest[manifest["status"] == "ok"].drop_duplicates("sha256").sort_values("captured_at")
    rows = rows.reset_index(drop=True)
    rows["board_id"] = rows["board_id"].fillna(rows["path"]).astype(str)
    features = pd.read_parquet(workdir.features).set_index("sha256").loc[rows["sha256"]]
    return rows, features.to_numpy(np.float32)


def check_drift(data_dir: Path, workdir: Workdir, params: Params, reference_until: pd.Timestamp, *,
                history: Path | None = None) -> list[CameraDrift]:
    """Per-camera drift verdicts for the newest window of `data_dir`; also written to <workdir>/drift.json
    and appended to the drift history (`history`, default `workdir.drift_history`) the dashboard shows."""
    from defectflow.anomaly.cv import AnomalyCV

    drift = params.section("drift", DriftParams)
    rows, embeddings = drift_table(data_dir, workdir, params)
    reference_until = pd.Timestamp(reference_until)
    reference_until = reference_until.tz_localize("UTC") if reference_until.tzinfo is None else reference_until
    t = pd.to_datetime(rows["captured_at"], utc=True)
    ref = np.flatnonzero(t <= reference_until)
    if len(ref) < drift.min_images:
        raise DefectflowError(f"only {len(ref)} images captured up to {reference_until} (the reference window); "
                              f"drift needs at least drift.min_images={drift.min_images}")
    head = AnomalyCV.for_table(workdir, rows, params.section("anomaly", AnomalyParams), params.seed)
    is_fail = rows["label"].eq("fail").fillna(False).to_numpy(bool).astype(np.int8)  # unlabelled count as good
    fitted = head.fit(ref, is_fail)
    rows["anomaly_score"] = np.nan
    rows.loc[ref, "anomaly_score"] = fitted.window_scores
    later = np.flatnonzero(t > reference_until)
    rows.loc[later, "anomaly_score"] = head.scores(fitted.model, later)
    stats = statistics_of([str(Path(data_dir).resolve() / p) for p in rows["path"]])
    table = pd.concat([rows, stats], axis=1)
    results = drift_by_camera(table, embeddings, reference_until, drift, params.seed)
    atomic.write_json(workdir.root / "drift.json", {"reference_until": str(reference_until),
                                                    "cameras": [r.as_dict() for r in results]})
    append_history(history or workdir.drift_history, results, str(reference_until))
    for r in results:
        log.info("drift %s: %s (%d recent vs %d reference; min p %s)", r.camera_id, r.verdict, r.n_recent,
                 r.n_reference, min(r.p_values.values()) if r.p_values else "n/a")
    return results
