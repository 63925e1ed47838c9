"""Shared test setup. Service fixtures live in tests/fixtures/<service>.py, loaded as plugins."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.services",
    "tests.fixtures.postgres",
    "tests.fixtures.dask_cluster",
    "tests.fixtures.azurite",
    "tests.fixtures.pipeline",
    "tests.fixtures.demo",
    "tests.fixtures.mlflow_server",
    "tests.fixtures.prefect_server",
    "tests.fixtures.scoring_model",
    "tests.fixtures.browser",
    "tests.fixtures.defect_model",
    "tests.fixtures.docker_engine",
]

_MLFLOW_ENV_AT_START = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}


@pytest.fixture(autouse=True)
def isolated_mlflow_uris():
    """Undo what a test did to MLflow's global tracking/registry URIs.

    mlflow.set_tracking_uri / set_registry_uri also export MLFLOW_TRACKING_URI /
    MLFLOW_REGISTRY_URI for subprocesses: without this, one test's server would silently
    become every later test's (and subprocess's) registry.
    """
    yield
    if "mlflow" in sys.modules:
        import mlflow
        from mlflow.tracking._model_registry import utils as registry_utils

        mlflow.set_tracking_uri(None)
        registry_utils._registry_uri = None
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        del os.environ[key]
    os.environ.update(_MLFLOW_ENV_AT_START)
