"""MLflow artifacts on Azure Blob (Azurite).

1. Proxied (production setup): `mlflow server --artifacts-destination wasbs://…` holds the storage
   credentials; clients have none. The real defectflow pyfunc is registered through it, its
   artifacts land in Blob, and a fresh process loads it by alias and scores images.
2. Direct: an experiment whose artifact location is `wasbs://…`, the client holding the connection string.
Both end with a scan for the account key in everything MLflow stored or printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.azurite import assert_no_secrets
from tests.fixtures.services import ServiceProcess, free_port, http_ok, wait_until

pytestmark = pytest.mark.integration
MODEL_NAME = "defectflow-azure"
REPO = Path(__file__).resolve().parents[2]


def wasbs(azurite, container: str, path: str) -> str:
    return f"wasbs://{container}@{azurite.account_name}.blob.core.windows.net/{path}"


@pytest.fixture
def mlflow_on_blob(azurite, postgres_url, tmp_path):
    """An `mlflow server` on PostgreSQL whose artifacts go to an Azurite container, proxied to clients."""
    azurite.service().create_container("mlflow")
    port = free_port()
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    server = ServiceProcess(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", postgres_url("mlflow_azure"),
         "--artifacts-destination", wasbs(azurite, "mlflow", "artifacts"), "--workers", "1"],
        log=tmp_path / "mlflow-server.log", env=env, cwd=tmp_path,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{uri}/health"), 120, "mlflow server", server.proc, server.log)
        yield uri, server.log
    finally:
        server.stop()


def credential_free_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MLFLOW_"))}
    return {**env, **extra}


def python(code: str, env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_registered_defectflow_model_with_artifacts_in_blob_scores_in_a_fresh_process(
        azurite, mlflow_on_blob, trained_pipeline, tmp_path):
    uri, server_log = mlflow_on_blob
    env = credential_free_env(MLFLOW_TRACKING_URI=uri)
    images = sorted(str(p) for p in trained_pipeline.data_dir.rglob("*.png"))[:12]

    register_out = python(f"""
        import json
        from pathlib import Path
        from defectflow.registry.register import register_model
        from defectflow.workdir import Workdir
        from tests.fixtures.pipeline import fast_params
        params = fast_params("register.model_name={MODEL_NAME}", "register.experiment=azure-artifacts")
        print("RESULT" + json.dumps(register_model(Path({str(trained_pipeline.data_dir)!r}),
                                                   Workdir({str(trained_pipeline.workdir)!r}), params)))
    """, env, REPO)
    registered = json.loads(register_out.split("RESULT", 1)[1].splitlines()[0])
    assert registered["gate_passed"] and registered["version"]

    blobs = [b.name for b in azurite.service().get_container_client("mlflow").list_blobs()]
    for artifact in ("MLmodel", "backbone.pt", "booster.txt", "spec.json"):
        assert any(b.startswith("artifacts/") and b.endswith(artifact) for b in blobs), (artifact, blobs[:20])

    scored = python(f"""
        import mlflow, pandas as pd
        model = mlflow.pyfunc.load_model("models:/{MODEL_NAME}@challenger")
        out = model.predict(pd.DataFrame({{"image": {images!r}}}))
        print("SCORES" + out.to_json(orient="records"))
    """, env, tmp_path)
    from_blob = json.loads(scored.split("SCORES", 1)[1].splitlines()[0])

    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(trained_pipeline.tracking_uri)
    local = mlflow.pyfunc.load_model(trained_pipeline.challenger_uri).predict(pd.DataFrame({"image": images}))
    assert [r["decision"] for r in from_blob] == list(local["decision"])
    assert [r["fail_probability"] for r in from_blob] == pytest.approx(list(local["fail_probability"]), abs=1e-6)

    client = mlflow.MlflowClient(uri, registry_uri=uri)
    run = client.get_run(registered["run_id"])
    version = client.get_model_version(MODEL_NAME, registered["version"])
    stored = json.dumps([run.data.params, run.data.tags, dict(version.tags), version.source, run.info.artifact_uri])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), "clients should reach artifacts through the server"
    assert_no_secrets([azurite.account_key], paths=[server_log], texts=[stored, register_out, scored])


def test_wasbs_artifact_location_with_client_credentials(azurite, tmp_path):
    azurite.service().create_container("mlflow-direct")
    env = credential_free_env(AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    out = python(f"""
        import mlflow
        mlflow.set_tracking_uri("sqlite:///{tmp_path / 'mlflow.db'}")
        exp = mlflow.create_experiment("direct", artifact_location={wasbs(azurite, 'mlflow-direct', 'exp')!r})
        with mlflow.start_run(experiment_id=exp) as run:
            mlflow.log_dict({{"threshold": 0.42}}, "spec.json")
        got = mlflow.artifacts.load_dict(run.info.artifact_uri + "/spec.json")
        print("GOT", got["threshold"], run.info.artifact_uri)
    """, env, tmp_path)
    assert "GOT 0.42 wasbs://mlflow-direct@" in out
    blobs = [b.name for b in azurite.service().get_container_client("mlflow-direct").list_blobs()]
    assert any(b.endswith("/artifacts/spec.json") for b in blobs), blobs
    assert_no_secrets([azurite.account_key], paths=[tmp_path], texts=[out])
