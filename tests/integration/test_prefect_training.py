"""The training flow against a real Prefect server and a real MLflow server (PostgreSQL).

One flow run trains, registers and promotes; a second run with the same inputs resumes from
the cache (no stage recomputed, no second version); a failing gate and an unreachable
registry fail the run with a clear state message and change nothing in the registry.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.pipeline import FAST_OVERRIDES
from tests.fixtures.services import free_port

pytestmark = pytest.mark.integration

NAME = "flow-it"
STAGES = ["validate", "featurize", "train", "evaluate", "register"]


@pytest.fixture(scope="module")
def training_flow():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from flows.training import training_flow

    return training_flow


def task_states(flow_run_id) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name.rsplit("-", 1)[0]: run.state.name for run in runs}  # task run names are "<task>-<suffix>"


def test_training_flow_registers_promotes_reports_and_resumes(prefect_server, mlflow_tracking, trained_pipeline,
                                                             training_flow, tmp_path):
    from mlflow import MlflowClient
    from prefect.artifacts import Artifact

    work = tmp_path / "work"
    shutil.copytree(trained_pipeline.workdir, work, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    overrides = [*FAST_OVERRIDES, f"register.model_name={NAME}"]

    first = training_flow(str(trained_pipeline.data_dir), str(work), "params.yaml", overrides, return_state=True)
    assert first.is_completed(), first.message
    result = first.result()
    assert result["register"]["version"] == "1" and result["promotion"]["action"] == "promoted"
    client = MlflowClient(mlflow_tracking, registry_uri=mlflow_tracking)
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    assert client.get_model_version(NAME, "1").tags["promotion.decided_by"].startswith("prefect:flow-run/")

    report = Artifact.get("training-report")
    assert report is not None and report.type == "markdown"
    markdown = report.data
    assert "| fold | test window |" in markdown and "Gate: PASSED" in markdown
    assert result["register"]["run_id"] in markdown and f"models:/{NAME}/1" in markdown
    assert "review" in markdown and "Promotion: promoted" in markdown

    # Same inputs again: every stage comes from the cache, nothing is registered twice.
    second = training_flow(str(trained_pipeline.data_dir), str(work), "params.yaml", overrides, return_state=True)
    assert second.is_completed(), second.message
    states = task_states(second.state_details.flow_run_id)
    assert all(states[stage] == "Cached" for stage in STAGES), states
    assert [v.version for v in client.search_model_versions(f"name='{NAME}'")] == ["1"]
    assert second.result()["promotion"]["action"] == "refused"  # v1 is already champion

    # A gate the model cannot pass: the run fails with the gate's reasons; the registry is unchanged.
    failed = training_flow(str(trained_pipeline.data_dir), str(work), "params.yaml",
                           [*overrides, "gate.min_auc=0.9999"], return_state=True)
    assert failed.is_failed()
    assert "gate failed" in failed.message and "gate.min_auc" in failed.message
    assert [v.version for v in client.search_model_versions(f"name='{NAME}'")] == ["1"]
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"


def test_unreachable_registry_fails_the_flow_before_any_work(prefect_server, training_flow, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    state = training_flow(str(tmp_path / "data"), str(tmp_path / "work"), "params.yaml", [], return_state=True)
    assert state.is_failed()
    assert "unreachable" in state.message and "nothing was changed" in state.message
    assert time.monotonic() - started < 60
    assert task_states(state.state_details.flow_run_id) == {}
    assert not (tmp_path / "work").exists()
