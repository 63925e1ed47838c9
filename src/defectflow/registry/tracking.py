"""Which MLflow tracking server or database to talk to, whether it answers, and the experiment to log into.

The layer under `registry.client.Registry` (the facade every other module uses); the register
stage calls `use_experiment` directly because it logs through MLflow's module-level run API.
"""

from __future__ import annotations

import os

from defectflow.errors import ConfigError, RegistryUnavailableError
from defectflow.params import RegisterParams
from defectflow.redact import http_credentials, redact_url, scrub
from defectflow.workdir import Workdir


def tracking_uri(params: RegisterParams, workdir: Workdir) -> str:
    """$MLFLOW_TRACKING_URI wins (deployments set it), then params, then a SQLite file in the workdir."""
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking_uri or f"sqlite:///{workdir.mlflow_db.resolve()}"


def tracking_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast (RegistryUnavailableError, exit 7) when the tracking server or database does not answer.

    MLflow's own client retries for minutes before giving up, printing tracebacks that quote the
    URL; every command that needs the registry calls this first, before doing any work. Local
    stores (sqlite:, file:, a path) always answer.
    """
    if uri.startswith(("http://", "https://")):
        problem = _http_problem(uri, timeout_s)
    elif "://" in uri and not uri.startswith(("sqlite:", "file:")):
        problem = _database_problem(uri, timeout_s)
    else:
        return
    if problem is not None:
        raise RegistryUnavailableError(
            f"MLflow tracking server {redact_url(uri)} is unreachable ({scrub(problem, uri)}); "
            "start it or set MLFLOW_TRACKING_URI / register.tracking_uri; nothing was changed")


def _http_problem(uri: str, timeout_s: float) -> str | None:
    """None when GET <uri>/health answers 200, else what went wrong. Credentials in the URL are
    sent as a Basic Authorization header (urllib cannot read them from the URL itself)."""
    import base64
    import http.client
    import urllib.error
    import urllib.request

    base, username, password = http_credentials(uri)
    request = urllib.request.Request(base.rstrip("/") + "/health")
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        return str(getattr(exc, "reason", exc))


def _database_problem(uri: str, timeout_s: float) -> str | None:
    """None when a database tracking store accepts a connection, else the driver's complaint."""
    import sqlalchemy as sa

    try:
        args = {"connect_timeout": int(timeout_s)} if uri.startswith("postgresql") else {}
        engine = sa.create_engine(uri, connect_args=args)
        try:
            with engine.connect():
                return None
        finally:
            engine.dispose()
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def point_mlflow_at(uri: str) -> None:
    """Make MLflow's module-level API track and register at `uri`, whatever an earlier call in this process set."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def use_experiment(params: RegisterParams, workdir: Workdir) -> str:
    """Point mlflow at the tracking URI and experiment; a local store keeps artifacts in the workdir."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(params, workdir)
    tracking_reachable(uri)
    point_mlflow_at(uri)
    try:
        if mlflow.get_experiment_by_name(params.experiment) is None:
            local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
            location = workdir.mlflow_artifacts.resolve().as_uri() if local else None
            mlflow.create_experiment(params.experiment, artifact_location=location)
        mlflow.set_experiment(params.experiment)
    except MlflowException as exc:
        raise RegistryUnavailableError(f"MLflow at {redact_url(uri)} refused the experiment "
                                       f"{params.experiment!r}: {scrub(exc.message, uri)}") from None
    except ValueError as exc:  # MLflow splits the URI with urllib, which rejects e.g. a raw `[` in a password
        raise ConfigError(f"MLflow cannot read the tracking URI {redact_url(uri)} ({scrub(str(exc), uri)}); "
                          "percent-encode special characters of the password (for example [ as %5B)") from None
    return uri
