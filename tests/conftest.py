"""Shared test setup. Service fixtures live in tests/fixtures/<service>.py, loaded as plugins."""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.services",
    "tests.fixtures.dask_cluster",
    "tests.fixtures.azurite",
    "tests.fixtures.pipeline",
    "tests.fixtures.mlflow_server",
    "tests.fixtures.prefect_server",
    "tests.fixtures.scoring_model",
    "tests.fixtures.browser",
    "tests.fixtures.defect_model",
    "tests.fixtures.docker_engine",
]
