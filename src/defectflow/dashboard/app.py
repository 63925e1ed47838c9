"""Dashboard configuration from params/env, and a standalone app for `defectflow dashboard`.

The serving app mounts the same router (`dashboard_router(dashboard_config(...))`), so the
page is identical whichever process serves it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from defectflow.dashboard.router import PREFIX, DashboardConfig, dashboard_router
from defectflow.params import DashboardParams, GateParams, Params, RegisterParams, ScoreParams
from defectflow.registry.tracking import tracking_uri
from defectflow.scoring.results import resolve_results_url
from defectflow.workdir import Workdir


def blob_cache_dir(score: ScoreParams, workdir: Workdir) -> Path:
    """Where batch scoring downloads azure:// inputs (and where thumbnails of them are read)."""
    return Path(score.blob_cache) if score.blob_cache else workdir.blob_cache


def dashboard_config(params: Params, workdir: Workdir, *, results_url: str | None = None,
                     image_roots: list[Path] | None = None) -> DashboardConfig:
    """Everything the dashboard needs, from params.yaml, env vars and explicit overrides.

    Image roots: the explicit ones, else params data.dir plus dashboard.image_roots; the blob
    download cache is always allowed.
    """
    score = params.section("score", ScoreParams)
    dashboard = params.section("dashboard", DashboardParams)
    register = params.section("register", RegisterParams)
    roots = list(image_roots or [])
    if not roots:
        roots = [Path(p) for p in dashboard.image_roots]
        if params.data.dir:
            roots.append(Path(params.data.dir))
    cache = blob_cache_dir(score, workdir)
    return DashboardConfig(
        results_url=resolve_results_url(results_url or score.results_url, workdir),
        tracking_uri=tracking_uri(register, workdir),
        model_name=register.model_name,
        image_roots=(*roots, cache),
        blob_cache=cache,
        gate_auc=params.section("gate", GateParams).min_auc,
        params=dashboard,
        drift_history=workdir.drift_history,
    )


def create_dashboard_app(config: DashboardConfig) -> FastAPI:
    """A FastAPI app serving only the dashboard (the serving app includes the same router)."""
    app = FastAPI(title="defectflow dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(dashboard_router(config))

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(PREFIX)

    return app
