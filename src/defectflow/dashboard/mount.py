"""The dashboard router as an importable attribute, for the serving app's DEFECTFLOW_EXTRA_ROUTERS.

`DEFECTFLOW_EXTRA_ROUTERS=defectflow.dashboard.mount:router` mounts /dashboard on the scoring
service. The router is built on first access (not at import) from params and the environment:
DEFECTFLOW_PARAMS (params file, default ./params.yaml), DEFECTFLOW_RESULTS_URL (results
database), MLFLOW_TRACKING_URI (model history), DEFECTFLOW_DASHBOARD_IMAGE_ROOTS (folders the
thumbnails may be read from, separated by ':'; default params data.dir + dashboard.image_roots).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter

PARAMS_ENV = "DEFECTFLOW_PARAMS"
IMAGE_ROOTS_ENV = "DEFECTFLOW_DASHBOARD_IMAGE_ROOTS"


def build_router_from_env() -> APIRouter:
    from defectflow.dashboard.app import dashboard_config
    from defectflow.dashboard.router import dashboard_router
    from defectflow.params import Params
    from defectflow.workdir import Workdir

    params = Params.load(os.environ.get(PARAMS_ENV) or None)
    workdir = Workdir(params.data.work_dir())
    roots = [Path(p) for p in os.environ.get(IMAGE_ROOTS_ENV, "").split(os.pathsep) if p]
    return dashboard_router(dashboard_config(params, workdir, image_roots=roots))


def __getattr__(name: str) -> APIRouter:
    if name != "router":
        raise AttributeError(name)
    router = build_router_from_env()
    globals()["router"] = router  # build once per process
    return router
