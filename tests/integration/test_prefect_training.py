"""The training flow against a real Prefect server and a real MLflow server (PostgreSQL).

One flow run trains, registers, promotes and ships: its container task builds, smoke-tests and
pushes the serving image to the test registry (on the test Docker engine, configured the way a
site configures it: DOCKER_HOST, DEFECTFLOW_IMAGE_REGISTRY, DEFECTFLOW_BASE_IMAGE). This is the
suite's one serving-image build. A second run with the same inputs resumes from the cache (no
stage recomputed, no second version, no second image); a failing gate and an unreachable
registry fail the run with a clear state message and change nothing in the registry.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.pipeline import FAST_OVERRIDES
from tests.fixtures.services import free_port

pytestmark = pytest.mark.integration

NAME = "flow-it"
STAGES = ["validate", "featurize", "train", "evaluate", "register"]
# A label only the site's base image carries: the serving image inherits it when it was built FROM that image.
SITE_BASE_LABEL = "org.example.site-base"


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


def registry_tags(registry: str, repository: str) -> list[str]:
    with urllib.request.urlopen(f"http://{registry}/v2/{repository}/tags/list") as resp:
        return json.load(resp)["tags"]


@pytest.fixture
def site_image_settings(docker_engine, monkeypatch) -> None:
    """Point the flow's container task at the test engine and registry, with a base image of the site's own
    (the test engine cannot pull one: it is the debootstrap-made image plus a label that marks it)."""
    docker = docker_engine.client()
    dockerfile = f"FROM {docker_engine.base_image}\nLABEL {SITE_BASE_LABEL}=1\n"
    docker.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag="site-python:3.11", pull=False, rm=True)
    docker.close()
    monkeypatch.setenv("DOCKER_HOST", docker_engine.base_url)
    monkeypatch.setenv("DEFECTFLOW_IMAGE_REGISTRY", docker_engine.registry)
    monkeypatch.setenv("DEFECTFLOW_BASE_IMAGE", "site-python:3.11")


def test_training_flow_registers_promotes_ships_reports_and_resumes(prefect_server, mlflow_tracking,
                                                                   trained_pipeline, training_flow, docker_engine,
                                                                   site_image_settings, tmp_path):
    from mlflow import MlflowClient
    from prefect.artifacts import Artifact

    from defectflow.registry.names import DIGEST_TAG

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

    # The promoted version shipped: the registry lists its tag and the version names the pushed digest.
    assert task_states(first.state_details.flow_run_id)["container"] == "Completed"
    assert registry_tags(docker_engine.registry, NAME) == ["v1"]
    pushed = client.get_model_version(NAME, "1").tags[DIGEST_TAG]
    assert pushed.startswith(f"{docker_engine.registry}/{NAME}@sha256:")
    # Forget the image locally, then get it back from the registry by digest alone: the one that was built,
    # FROM the site's base image, running as a non-root user with neither torch nor MLflow inside.
    docker = docker_engine.client()
    built = docker.images.get(f"{docker_engine.registry}/{NAME}:v1")
    docker.images.remove(built.id, force=True)
    pulled = docker.images.pull(pushed)
    assert pulled.id == built.id
    labels = pulled.attrs["Config"]["Labels"]
    assert labels["org.defectflow.model.version"] == "1" and labels[SITE_BASE_LABEL] == "1"
    probe = ("import importlib.util as u, os; "
             "print(os.getuid(), [m for m in ('torch', 'mlflow', 'lightgbm') if u.find_spec(m)])")
    out = docker.containers.run(pushed, ["python3", "-c", probe], network_mode="host", remove=True)
    assert out.decode().strip() == "10001 []"
    docker.close()

    # Same inputs again: every stage comes from the cache, nothing is registered twice.
    second = training_flow(str(trained_pipeline.data_dir), str(work), "params.yaml", overrides, return_state=True)
    assert second.is_completed(), second.message
    states = task_states(second.state_details.flow_run_id)
    assert all(states[stage] == "Cached" for stage in STAGES), states
    assert [v.version for v in client.search_model_versions(f"name='{NAME}'")] == ["1"]
    assert second.result()["promotion"]["action"] == "refused"  # v1 is already champion
    assert "container" not in states and registry_tags(docker_engine.registry, NAME) == ["v1"]  # nothing shipped

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
