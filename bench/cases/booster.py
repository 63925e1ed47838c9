"""Case (d): LightGBM training time against the number of rows (fixed rounds, no early stop)."""

from __future__ import annotations

import numpy as np

from bench.cases.context import Context
from bench.timing import Result, seconds_runs


def _lgbm_settings() -> dict:
    """`train.lgbm` from params.yaml when it can be read, else the TrainParams defaults."""
    from defectflow.errors import DefectflowError
    from defectflow.params import Params, TrainParams

    try:
        return dict(Params.load("params.yaml").get("train.lgbm"))
    except (OSError, DefectflowError):  # run from outside the repository: the code defaults
        return dict(TrainParams().lgbm)


def run(ctx: Context) -> list[Result]:
    try:
        from defectflow.training.booster import fit_booster
    except ImportError as exc:
        return [Result("d", "LightGBM training", "s", [float("nan")], note=f"skipped: {exc}")]

    cfg = ctx.cfg["booster"]
    lgbm = _lgbm_settings()
    lgbm["n_estimators"] = int(cfg["rounds"])
    rng = np.random.default_rng(int(ctx.cfg["seed"]))
    rows = []
    for n in cfg["rows"]:
        ctx.log(f"booster: {n} rows")
        X = rng.standard_normal((int(n), int(cfg["dim"])), dtype=np.float32)
        y = (X[:, :8].sum(axis=1) + rng.standard_normal(int(n)) > 0).astype(np.int32)  # a learnable signal
        runs = seconds_runs(lambda X=X, y=y: fit_booster(X, y, lgbm, int(ctx.cfg["seed"])), ctx.repeats)
        rows.append(Result("d", f"fit_booster {n} rows × {cfg['dim']} features, {cfg['rounds']} rounds", "s", runs,
                           params={"rows": int(n), "dim": int(cfg["dim"]), "rounds": int(cfg["rounds"]),
                                   "num_leaves": lgbm.get("num_leaves"), "n_jobs": lgbm.get("n_jobs")}))
    for row in rows:
        row.baseline, row.ratio = rows[0].name, row.median / rows[0].median
        row.note = f"{row.params['rows'] / rows[0].params['rows']:.0f}× the rows, {row.ratio:.1f}× the time"
    return rows
