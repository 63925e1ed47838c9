"""Prometheus metrics of the scoring service, in a registry of its own per app instance."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Label values come from fixed sets: any client can send any method name, and each new label
# value is a new time series (unbounded /metrics growth, without even an API key).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("defectflow_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("defectflow_http_request_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.inference = Histogram("defectflow_inference_seconds", "decode + graph run per request",
                                   ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        # reason: classifier | novel | normal (anomaly.novelty.REASONS), so novel fails can be told apart.
        self.predictions = Counter("defectflow_predictions_total", "scored images by decision and its reason",
                                   ["decision", "reason"], registry=self.registry)
        self.rejected = Counter("defectflow_rejected_images_total", "uploads refused, by reason",
                                ["reason"], registry=self.registry)
        self.model_ready = Gauge("defectflow_model_ready", "1 when the model is loaded", registry=self.registry)
        self.model_info = Gauge("defectflow_model_info", "the loaded model (value 1)",
                                ["name", "version", "onnx_sha256"], registry=self.registry)


class RequestMetrics:
    """ASGI middleware counting requests and timing them, labelled by route template (bounded cardinality)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"] if scope["method"] in METHODS else "other"
            code = str(status) if 100 <= status <= 599 else "other"
            self.metrics.requests.labels(method, route, code).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
