"""The champion model and the AUC history of every registered version, read from MLflow.

Each version's AUC is its training run's `mean_auc` metric (the mean time-split CV AUC logged
by `defectflow register`), its operating threshold the run's `threshold` metric; aliases
(champion, challenger) and the gate tag come from the registry. Reads are cached for a short
time so page loads do not hammer the tracking server, and a registry that cannot be reached
shows as a message on the page, never as an error page.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from defectflow.redact import redact_url
from defectflow.registry.client import Registry
from defectflow.registry.names import AUC_METRIC, CHAMPION, GATE_TAG, THRESHOLD_METRIC

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionInfo:
    version: str
    created: datetime
    aliases: tuple[str, ...]
    mean_auc: float | None
    gate_passed: bool | None
    run_id: str | None
    threshold: float | None = None  # the operating threshold: a stored fail below it was the novelty rule's


@dataclass(frozen=True)
class ModelHistory:
    name: str
    versions: list[VersionInfo] = field(default_factory=list)  # oldest first
    error: str | None = None

    @property
    def champion(self) -> VersionInfo | None:
        return next((v for v in self.versions if CHAMPION in v.aliases), None)


def read_history(tracking_uri: str | None, name: str) -> ModelHistory:
    """Every version of registered model `name` with its AUC; errors are returned, not raised."""
    try:
        from mlflow.exceptions import MlflowException
    except ImportError:
        return ModelHistory(name, error="the MLflow client is not installed in this image: no model history")

    try:
        # Inside the try: the client opens its store at once, and a database store needs more of
        # MLflow (alembic) than the batch image carries.
        client = Registry(tracking_uri).client
        versions = client.search_model_versions(f"name = '{name}'")
        # Aliases from the registered model: search results leave ModelVersion.aliases empty on some stores.
        aliases: dict[str, list[str]] = {}
        if versions:
            for alias, version in client.get_registered_model(name).aliases.items():
                aliases.setdefault(str(version), []).append(alias)
        infos = []
        for mv in versions:
            metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
            gate = (mv.tags or {}).get(GATE_TAG)
            infos.append(VersionInfo(
                version=str(mv.version),
                created=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
                aliases=tuple(sorted(aliases.get(str(mv.version), ()))),
                mean_auc=metrics.get(AUC_METRIC),
                gate_passed=None if gate is None else gate.lower() == "true",
                run_id=mv.run_id,
                threshold=metrics.get(THRESHOLD_METRIC),
            ))
    except (MlflowException, OSError) as exc:
        where = redact_url(tracking_uri or "the default MLflow store")
        log.warning("model registry at %s unavailable: %s", where, exc)
        return ModelHistory(name, error=f"model registry at {where} unavailable: {type(exc).__name__}")
    except ImportError as exc:  # a database store needs the full MLflow (alembic); the batch image has the client only
        where = redact_url(tracking_uri or "the default MLflow store")
        return ModelHistory(name, error=f"the model registry at {where} needs the full MLflow package ({exc.name}): "
                                        "point MLFLOW_TRACKING_URI at the tracking server")
    return ModelHistory(name, sorted(infos, key=lambda v: int(v.version)))


class CachedHistory:
    """read_history behind a time-to-live cache, safe to share between request threads."""

    def __init__(self, tracking_uri: str | None, ttl_seconds: float):
        self.tracking_uri = tracking_uri
        self.ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, ModelHistory]] = {}

    def get(self, name: str) -> ModelHistory:
        with self._lock:
            hit = self._cache.get(name)
            if hit and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
        history = read_history(self.tracking_uri, name)
        if history.error is None:  # retry an unreachable registry on the next load
            with self._lock:
                self._cache[name] = (time.monotonic(), history)
        return history
