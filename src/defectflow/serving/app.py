"""The scoring service: FastAPI over an ONNX edge bundle (no torch, no MLflow in the process).

Routes: POST /v1/predict (one image; `?explain=true` adds the anomaly score and a PNG overlay of
the anomaly map when the bundle has the anomaly head), POST /v1/predict/batch (several),
GET /v1/model, GET /healthz (process alive), GET /readyz (model loaded), GET /metrics (Prometheus).
Every `decision` applies the novelty rule when the bundle has the anomaly head (`reason` novel: the
classifier passed an image unlike every good training image), explained or not.
The model loads in a background thread at start-up so liveness answers at once and
readiness turns true when scoring can start. Decoding and graph runs happen in worker
threads, at most `max_concurrent_inferences` at a time; the ONNX session is thread-safe.

Other parts of the product (the operators' dashboard) mount their routers with
`create_app(settings, extra_routers=[router])` or DEFECTFLOW_EXTRA_ROUTERS=module:attribute.
"""

from __future__ import annotations

import base64
import importlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

import defectflow
from defectflow.errors import ConfigError
from defectflow.inference.bundle import EdgeModel
from defectflow.inference.images import ImageLimits, ImageRejected
from defectflow.serving.auth import ApiKeyGate, require_api_key, uses_api_key
from defectflow.serving.limits import BodySizeLimit
from defectflow.serving.metrics import RequestMetrics, ServiceMetrics
from defectflow.serving.settings import ServingSettings
from defectflow.validation.reasons import Reason

log = logging.getLogger(__name__)

# HTTP status per refusal reason: size problems are 413, formats we do not read are 415,
# the rest are well-formed requests whose image cannot be scored (422).
STATUS_BY_REASON: dict[Reason, int] = {
    Reason.DECOMPRESSION_BOMB: 413, Reason.TOO_LARGE: 413,
    Reason.NOT_AN_IMAGE: 415, Reason.UNSUPPORTED_FORMAT: 415,
}


class Explanation(BaseModel):
    """Where and how unusual (POST /v1/predict?explain=true): the anomaly head's view of the image."""

    anomaly_score: float = Field(description="the largest patch anomaly of the image")
    novelty_threshold: float = Field(description="the training pass images' high score quantile")
    novel: bool = Field(description="anomaly_score > novelty_threshold")
    review_reason: str = Field(description="the prediction's `reason`: classifier (fail_probability >= threshold), "
                               "novel (the novelty rule alone made `decision` fail) or normal")
    overlay_png_base64: str = Field(description="PNG, base64: the model's input with the anomaly map blended in, "
                                    "coloured on the novelty scale, its maximum ringed")


DECISION_DOC = ("fail when the classifier flags the image (fail_probability >= threshold) or, for a model with "
                "the anomaly head, when its anomaly score is above the novelty threshold (the novelty rule)")
REASON_DOC = ("why: classifier (fail_probability >= threshold), novel (the novelty rule alone: the image looks unlike "
              "every good training image although the classifier passes it) or normal (pass)")


class Prediction(BaseModel):
    filename: str | None
    fail_probability: float
    decision: str = Field(description=DECISION_DOC)
    reason: str = Field(description=REASON_DOC)
    threshold: float
    model_version: str
    explanation: Explanation | None = None


class BatchItem(BaseModel):
    filename: str | None
    fail_probability: float | None = None
    decision: str | None = Field(None, description=DECISION_DOC)
    reason: str | None = Field(None, description=REASON_DOC)
    error: str | None = None
    detail: str | None = None


class BatchPrediction(BaseModel):
    model_version: str
    threshold: float
    n_scored: int
    n_rejected: int
    results: list[BatchItem]


class ModelInfo(BaseModel):
    name: str
    version: str
    threshold: float
    metrics: dict[str, float]
    backbone: str
    image_size: int
    onnx_sha256: str
    model_uri: str
    exported_at: str
    explainable: bool  # the bundle has the anomaly head: POST /v1/predict?explain=true works


class Status(BaseModel):
    status: str
    detail: str | None = None


class ErrorBody(BaseModel):
    error: str
    detail: str


ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 413, 415, 422, 503)}
NO_ANOMALY_HEAD = {409: {"model": ErrorBody, "description": "explain=true, but the model has no anomaly head"}}
# `error` codes of refusals raised by the framework itself (routing, body parsing).
FRAMEWORK_ERRORS = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed"}


class ModelSlot:
    """The model, loaded once in the background; readiness and failures are visible to probes."""

    def __init__(self, settings: ServingSettings):
        self.settings = settings
        self.model: EdgeModel | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self, metrics: ServiceMetrics) -> None:
        self._thread = threading.Thread(target=self._load, args=(metrics,), name="model-loader", daemon=True)
        self._thread.start()

    def _load(self, metrics: ServiceMetrics) -> None:
        s = self.settings
        try:
            model = EdgeModel(s.model_dir, intra_op_threads=s.inference_threads,
                              limits=ImageLimits(max_pixels=s.max_pixels, min_side=s.min_side, max_side=s.max_side))
        except Exception as exc:  # any load failure must surface on /readyz, not kill the thread silently
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("model bundle %s failed to load: %s", s.model_dir, self.error)
            return
        m = model.manifest
        metrics.model_info.labels(m.model_name, m.model_version, m.onnx_sha256).set(1)
        metrics.model_ready.set(1)
        self.model = model
        log.info("model %s v%s loaded from %s", m.model_name, m.model_version, s.model_dir)

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def require(self) -> EdgeModel:
        if self.model is None:
            detail = f"the model failed to load: {self.error}" if self.error else "the model is still loading"
            raise HTTPException(status_code=503, detail={"error": "model_not_ready", "detail": detail})
        return self.model


def create_app(settings: ServingSettings | None = None, *, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """Build the service. `extra_routers` (and settings.extra_routers) are mounted as given."""
    settings = settings or ServingSettings.from_env()
    metrics = ServiceMetrics()
    slot = ModelSlot(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        slot.start(metrics)
        yield

    app = FastAPI(title="defectflow scoring service", version=defectflow.__version__, lifespan=lifespan,
                  description="Pass/fail scoring of inspection images with the exported champion model.")
    app.state.settings = settings
    app.state.model_slot = slot
    app.state.metrics = metrics
    app.state.inference_limiter = anyio.CapacityLimiter(settings.max_concurrent_inferences)
    protected: dict[str, Any] = {}  # path → route needing the API key, filled once routers are mounted
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(ApiKeyGate, settings=settings, protected=protected)  # outside the size limit: key first
    app.add_middleware(RequestMetrics, metrics=metrics)
    _install_error_handlers(app)
    routers = [_probe_router(), _api_router(), *extra_routers,
               *(_import_router(spec) for spec in settings.extra_routers)]
    for router in routers:
        app.include_router(router)
        protected.update({route.path: route for route in router.routes if uses_api_key(route)})
    _document_non_empty_uploads(app)
    return app


def _document_non_empty_uploads(app: FastAPI) -> None:
    """Say in the OpenAPI spec what the API enforces: a file has at least one byte, a batch at least one file."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            for schema in spec.get("components", {}).get("schemas", {}).values():
                for prop in schema.get("properties", {}).values():
                    if _is_file(prop):
                        prop["minLength"] = 1
                    elif prop.get("type") == "array" and _is_file(prop.get("items", {})):
                        prop["minItems"] = 1
                        prop["items"]["minLength"] = 1
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _is_file(schema: dict[str, Any]) -> bool:
    return schema.get("format") == "binary" or schema.get("contentMediaType") == "application/octet-stream"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)  # also FastAPI's subclass; 404/405 come from Starlette
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = FRAMEWORK_ERRORS.get(exc.status_code, "http_error")
        body = exc.detail if isinstance(exc.detail, dict) else {"error": code, "detail": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": "invalid_request", "detail": problems}, status_code=422)


def _probe_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=Status)
    def healthz() -> Status:
        """Liveness: the process answers."""
        return Status(status="ok")

    @router.get("/readyz", response_model=Status, responses={503: {"model": Status}})
    def readyz(request: Request) -> Any:
        """Readiness: the model bundle is loaded and verified."""
        slot: ModelSlot = request.app.state.model_slot
        if slot.model is not None:
            return Status(status="ready")
        state = "failed" if slot.error else "loading"
        return JSONResponse(Status(status=state, detail=slot.error).model_dump(), status_code=503)

    @router.get("/metrics", response_class=PlainTextResponse)
    def prometheus(request: Request) -> PlainTextResponse:
        """Prometheus exposition format."""
        return PlainTextResponse(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def _api_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["scoring"])

    @router.get("/model", response_model=ModelInfo, responses={503: ERRORS[503]})
    def model_info(request: Request) -> ModelInfo:
        """The model being served: version, threshold and its cross-validation AUC."""
        m = request.app.state.model_slot.require().manifest
        return ModelInfo(name=m.model_name, version=m.model_version, threshold=m.threshold, metrics=m.metrics,
                         backbone=m.backbone, image_size=m.image_size, onnx_sha256=m.onnx_sha256,
                         model_uri=m.model_uri, exported_at=m.created_at, explainable=m.anomaly is not None)

    @router.post("/predict", response_model=Prediction, dependencies=[Depends(require_api_key)],
                 responses={**ERRORS, **NO_ANOMALY_HEAD})
    async def predict(request: Request, file: Annotated[UploadFile, File(description="one PNG/JPEG/BMP/TIFF image")],
                      explain: bool = Query(False, description="also return the anomaly score and a PNG overlay of "
                                            "the anomaly map (409 when the model has no anomaly head)")) -> Prediction:
        """Score one image (multipart field `file`); with `explain=true`, say where it looks unusual."""
        model = request.app.state.model_slot.require()
        if explain and model.anomaly is None:
            raise HTTPException(status_code=409, detail={
                "error": "no_anomaly_head",
                "detail": f"model {model.name} v{model.version} was exported without the anomaly head, so it cannot "
                          "explain: train it with anomaly.enabled=true and export it again, or call without explain"})
        data = await _read_upload(request, file)
        try:
            [pred] = await _score(request, "predict_explain" if explain else "predict", model, [data], explain)
        except ImageRejected as exc:
            _count_rejection(request, exc.reason.value)
            raise HTTPException(status_code=STATUS_BY_REASON.get(exc.reason, 422),
                                detail={"error": exc.reason.value, "detail": f"{file.filename}: {exc}"}) from None
        pred, why = pred if explain else (pred, None)
        return Prediction(filename=file.filename, fail_probability=pred.fail_probability, decision=pred.decision,
                          reason=pred.reason, threshold=model.manifest.threshold, model_version=model.version,
                          explanation=None if why is None else Explanation(
                              anomaly_score=why.anomaly_score, novelty_threshold=why.novelty_threshold,
                              novel=why.novel, review_reason=why.review_reason,
                              overlay_png_base64=base64.b64encode(why.overlay_png).decode("ascii")))

    @router.post("/predict/batch", response_model=BatchPrediction, dependencies=[Depends(require_api_key)],
                 responses=ERRORS)
    async def predict_batch(request: Request,
                            files: Annotated[list[UploadFile], File(description="several images, field `files`")],
                            ) -> BatchPrediction:
        """Score several images in one graph run; an unusable image is reported in its slot, the rest are scored."""
        model = request.app.state.model_slot.require()
        limit = request.app.state.settings.max_batch
        if len(files) > limit:
            raise HTTPException(status_code=413, detail={"error": "too_many_files",
                                                         "detail": f"{len(files)} files sent; the limit is {limit}"})
        blobs = [await _read_upload(request, f) for f in files]
        outcomes = await _score_each(request, model, blobs)
        items = []
        for upload, outcome in zip(files, outcomes, strict=True):
            if isinstance(outcome, ImageRejected):
                items.append(BatchItem(filename=upload.filename, error=outcome.reason.value, detail=str(outcome)))
            else:
                items.append(BatchItem(filename=upload.filename, fail_probability=outcome.fail_probability,
                                       decision=outcome.decision, reason=outcome.reason))
        n_rejected = sum(1 for i in items if i.error)
        return BatchPrediction(model_version=model.version, threshold=model.manifest.threshold,
                               n_scored=len(items) - n_rejected, n_rejected=n_rejected, results=items)

    return router


async def _read_upload(request: Request, upload: UploadFile) -> bytes:
    limit = request.app.state.settings.max_image_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        _count_rejection(request, "file_too_large")
        raise HTTPException(status_code=413, detail={"error": "file_too_large",
                                                     "detail": f"{upload.filename}: more than {limit} bytes"})
    return data


async def _score(request: Request, endpoint: str, model: EdgeModel, blobs: list[bytes], explain: bool = False) -> list:
    """Decode and run the graph in a worker thread, within the concurrency limit; with `explain`,
    (prediction, explanation) pairs from the same graph run."""

    def run() -> list:
        return model.explain_decoded([model.decode(b) for b in blobs]) if explain else model.predict_bytes(blobs)

    start = time.perf_counter()
    out = await anyio.to_thread.run_sync(run, limiter=request.app.state.inference_limiter)
    _observe(request, endpoint, start, [pair[0] for pair in out] if explain else out)
    return out


async def _score_each(request: Request, model: EdgeModel, blobs: list[bytes]) -> list:
    """Batch variant: decode each image separately so one bad upload does not sink the others."""

    def run() -> list:
        decoded: list = []
        for data in blobs:
            try:
                decoded.append(model.decode(data))
            except ImageRejected as exc:
                decoded.append(exc)
        good = [d for d in decoded if not isinstance(d, ImageRejected)]
        preds = iter(model.predict_decoded(good))
        return [d if isinstance(d, ImageRejected) else next(preds) for d in decoded]

    start = time.perf_counter()
    outcomes = await anyio.to_thread.run_sync(run, limiter=request.app.state.inference_limiter)
    for o in outcomes:
        if isinstance(o, ImageRejected):
            _count_rejection(request, o.reason.value)
    _observe(request, "predict_batch", start, [o for o in outcomes if not isinstance(o, ImageRejected)])
    return outcomes


def _observe(request: Request, endpoint: str, start: float, preds: list) -> None:
    metrics: ServiceMetrics = request.app.state.metrics
    metrics.inference.labels(endpoint).observe(time.perf_counter() - start)
    for p in preds:
        metrics.predictions.labels(p.decision, p.reason).inc()


def _count_rejection(request: Request, code: str) -> None:
    request.app.state.metrics.rejected.labels(code).inc()


def _import_router(spec: str) -> APIRouter:
    """'package.module:attribute' → the APIRouter it names (DEFECTFLOW_EXTRA_ROUTERS)."""
    module_name, _, attribute = spec.partition(":")
    try:
        router = getattr(importlib.import_module(module_name), attribute or "router")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"DEFECTFLOW_EXTRA_ROUTERS entry {spec!r} cannot be imported: {exc}") from None
    if not isinstance(router, APIRouter):
        raise ConfigError(f"DEFECTFLOW_EXTRA_ROUTERS entry {spec!r} is a {type(router).__name__}, not an APIRouter")
    return router
