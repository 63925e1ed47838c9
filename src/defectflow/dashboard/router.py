"""The operator dashboard as a FastAPI router: server-rendered HTML, one small CSS and JS file.

Mount it on any FastAPI app with `app.include_router(dashboard_router(config))` (the serving
app does; `defectflow dashboard` runs it alone). Routes, all under /dashboard and kept out of
the OpenAPI spec (they are pages, not API):
- GET  /dashboard                  the page (filters as query parameters); each flagged card says why
                                   it was flagged (classifier or novel) when the model's threshold is
                                   known; with a drift history configured it also shows each
                                   camera's drift checks over time
- POST /dashboard/reviews          an operator confirms or corrects a decision (HTML form)
- GET  /dashboard/thumbnails/{id}  a JPEG thumbnail of a scored image
- GET  /dashboard/overlays/{id}    a PNG of the image with its anomaly map blended in, when the app
                                   serves the very model version that scored it and that model has
                                   the anomaly head (the scoring service with an explaining bundle)
- GET  /dashboard/static/{name}    dashboard.css, dashboard.js
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from defectflow.dashboard import queries
from defectflow.dashboard.chart import auc_chart
from defectflow.dashboard.model_history import CachedHistory, ModelHistory
from defectflow.dashboard.reviews import ReviewError, record_review
from defectflow.dashboard.thumbnails import ImageLocator, ThumbnailCache, ThumbnailUnavailable
from defectflow.errors import DefectflowError
from defectflow.inference.bundle import EdgeModel
from defectflow.inference.images import ImageRejected
from defectflow.monitoring.drift_history import DriftRecord, read_history
from defectflow.params import DashboardParams
from defectflow.registry.names import ModelVersionRef
from defectflow.scoring.results import Score, open_results

log = logging.getLogger(__name__)

PREFIX = "/dashboard"
PACKAGE_DIR = Path(__file__).parent
STATIC_FILES = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
FILTER_KEYS = ("date_from", "date_to", "camera", "board", "model")


@dataclass(frozen=True)
class DashboardConfig:
    results_url: str
    tracking_uri: str | None
    model_name: str  # registered model whose history is shown
    image_roots: tuple[Path, ...]  # folders thumbnails may be read from
    blob_cache: Path
    gate_auc: float  # drawn as the gate line on the AUC chart
    params: DashboardParams
    drift_history: Path | None = None  # the drift checks' history file (Workdir.drift_history); None: no panel


def dashboard_router(config: DashboardConfig) -> APIRouter:
    """Build the router; opens (and if needed creates) the results database now."""
    engine = open_results(config.results_url)
    templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")
    templates.env.filters["when"] = format_when
    history = CachedHistory(config.tracking_uri, config.params.registry_cache_seconds)
    locator = ImageLocator(tuple(r.resolve() for r in config.image_roots), config.blob_cache.resolve())
    thumbnails = ThumbnailCache()
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    @router.get("", response_class=HTMLResponse)
    def page(request: Request, date_from: str = "", date_to: str = "", camera: str = "", board: str = "",
             model: str = "", saved: int | None = None) -> Response:
        problems: list[str] = []
        with Session(engine) as session:
            options = queries.filter_options(session)
            model_ref = ModelVersionRef.from_key(model) if model else (options.models[0] if options.models else None)
            raw = dict(zip(FILTER_KEYS, (date_from, date_to, camera, board, model_ref.key if model_ref else ""),
                           strict=True))
            filters = queries.Filters(
                date_from=_parse_date(date_from, "from", problems), date_to=_parse_date(date_to, "to", problems),
                camera=camera or None, board=board or None, model=model_ref,
            )
            queue = queries.awaiting_review(session, filters, config.params.page_size)
            context = {
                "filters": filters,
                "raw": raw,
                "options": options,
                "queue": queue,
                "queue_total": queries.count_awaiting_review(session, filters),
                "results": queries.latest_results(session, filters, config.params.page_size),
                "reviews": queries.recent_reviews(session, 10),
                "saved": session.get(Score, saved) if saved else None,
                "problems": problems,
                "return_to": urlencode({k: v for k, v in raw.items() if v}),
                "thumb_px": config.params.thumbnail_px,
                "prefix": request.scope.get("root_path", "") + PREFIX,
            }
            context["explainer"] = explaining_model(request)
            registry = history.get(model_ref.name if model_ref else config.model_name)
            context["flag_reasons"] = flag_reasons(queue, model_thresholds(registry, request))
            context |= {"history": registry, "chart": auc_chart(registry.versions, config.gate_auc),
                        "gate_auc": config.gate_auc}
            context["drift"] = drift_checks(config.drift_history, filters.camera, problems)
            # Rendered inside the session: templates follow relationships (score.reviews).
            return templates.TemplateResponse(request, "dashboard.html", context)

    @router.post("/reviews")
    def review(request: Request, verdict: Annotated[str, Form()], reviewer: Annotated[str, Form()] = "",
               return_to: Annotated[str, Form()] = "") -> Response:
        _require_same_origin(request)
        score_id, _, label = verdict.partition(":")
        if not score_id.isdigit():
            raise HTTPException(422, f"verdict must look like '<score id>:<pass|fail>', got {verdict!r}")
        try:
            with Session(engine) as session, session.begin():
                stored = record_review(session, int(score_id), label, reviewer)
                log.info("review: score %s %s by %s", stored.score_id, stored.label, stored.reviewer)
        except ReviewError as exc:
            raise HTTPException(422, str(exc)) from None
        query = _safe_return_query(return_to)
        query["saved"] = score_id
        return RedirectResponse(f"{PREFIX}?{urlencode(query)}", status_code=303)

    @router.get("/thumbnails/{score_id}")
    def thumbnail(score_id: int) -> Response:
        with Session(engine) as session:
            score = session.get(Score, score_id)
            if score is None:
                raise HTTPException(404, f"no scored image with id {score_id}")
            try:
                data = thumbnails.get(locator.locate(score), score.sha256, config.params.thumbnail_px)
            except ThumbnailUnavailable as exc:
                raise HTTPException(404, str(exc)) from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @router.get("/overlays/{score_id}")
    def overlay(request: Request, score_id: int) -> Response:
        model = explaining_model(request)
        with Session(engine) as session:
            score = session.get(Score, score_id)
            if score is None:
                raise HTTPException(404, f"no scored image with id {score_id}")
            if model is None or (score.model_name, score.model_version) != (model.name, model.version):
                raise HTTPException(404, f"no overlay for score {score_id}: the app does not serve model "
                                    f"{score.model_name} v{score.model_version} with its anomaly head")
            try:
                data = locator.locate(score).read_bytes()
            except (ThumbnailUnavailable, OSError) as exc:
                raise HTTPException(404, str(exc)) from None
        try:
            [(_, why)] = model.explain_decoded([model.decode(data)])
        except ImageRejected as exc:
            raise HTTPException(404, f"{score.image} cannot be explained: {exc}") from None
        return Response(why.overlay_png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:  # a fixed list: the name never becomes a path
            raise HTTPException(404, f"no static file {name!r}")
        return FileResponse(PACKAGE_DIR / "static" / name, media_type=STATIC_FILES[name])

    return router


def drift_checks(path: Path | None, camera: str | None, problems: list[str]) -> dict[str, list[DriftRecord]] | None:
    """Each camera's drift checks, newest first (only `camera` when the page filters on one); None
    when no history is configured. An unreadable history is a message on the page, not an error page."""
    if path is None:
        return None
    try:
        history = read_history(path)
    except (DefectflowError, OSError) as exc:
        problems.append(str(exc))
        return {}
    return {c: list(reversed(checks)) for c, checks in history.items() if camera in (None, c)}


def model_thresholds(registry: ModelHistory, request: Request) -> dict[ModelVersionRef, float]:
    """Each model version's operating threshold, as far as the dashboard knows it: from the registry's
    history and from the model the app serves (which wins: its bundle's own threshold)."""
    known = {ModelVersionRef(registry.name, v.version): v.threshold for v in registry.versions
             if v.threshold is not None}
    served = getattr(getattr(request.app.state, "model_slot", None), "model", None)
    if served is not None:
        known[ModelVersionRef(served.name, served.version)] = served.manifest.threshold
    return known


def flag_reasons(queue: list[Score], thresholds: dict[ModelVersionRef, float]) -> dict[int, str]:
    """Score id → why a flagged image is in the queue: `classifier` (its fail probability reached the
    model's threshold) or `novel` (below it: the novelty rule alone sent it to review, see
    anomaly.novelty). The results database stores the decision, not the reason; a score whose model's
    threshold is unknown here gets no entry."""
    reasons = {}
    for score in queue:
        threshold = thresholds.get(ModelVersionRef(score.model_name, score.model_version))
        if threshold is not None:
            reasons[score.id] = "classifier" if score.probability >= threshold else "novel"
    return reasons


def explaining_model(request: Request) -> EdgeModel | None:
    """The model of the app this router is mounted on, when it has the anomaly head (the scoring
    service's; `defectflow dashboard` alone has none)."""
    slot = getattr(request.app.state, "model_slot", None)
    model = getattr(slot, "model", None)
    return model if model is not None and model.anomaly is not None else None


def _safe_return_query(return_to: str) -> dict[str, str]:
    """Keep only known filter keys from the form's return_to: the redirect can never leave the dashboard."""
    return {k: v for k, v in parse_qsl(return_to) if k in FILTER_KEYS and v}


def format_when(value: datetime | None) -> str:
    """UTC minutes for people; SQLite returns naive datetimes, which were stored as UTC."""
    if value is None:
        return "—"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _parse_date(raw: str, which: str, problems: list[str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        problems.append(f"date {which} {raw!r} is not a date (YYYY-MM-DD); the filter was ignored")
        return None


def _require_same_origin(request: Request) -> None:
    """Refuse cross-site form posts: a page elsewhere must not be able to file reviews in an operator's name."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "cross-origin review refused: post reviews from the dashboard page itself")
