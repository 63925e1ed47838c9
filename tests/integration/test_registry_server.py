"""Registry round trip against a real `mlflow server` on PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from defectflow.registry.register import register_model
from defectflow.workdir import Workdir
from tests.fixtures.pipeline import FAST_OVERRIDES as FAST
from tests.fixtures.pipeline import fast_params

pytestmark = pytest.mark.integration


def test_register_on_postgres_server_and_load_by_alias(trained_pipeline, mlflow_tracking, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(trained_pipeline.workdir, work, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    result = register_model(trained_pipeline.data_dir, Workdir(work), fast_params("register.model_name=pg-roundtrip"))
    assert result["tracking_uri"] == mlflow_tracking and result["version"] == "1"

    from mlflow import MlflowClient

    client = MlflowClient(mlflow_tracking, registry_uri=mlflow_tracking)
    version = client.get_model_version_by_alias("pg-roundtrip", "challenger")
    assert version.version == "1" and version.tags["gate_passed"] == "true"
    run = client.get_run(result["run_id"])
    assert run.data.metrics["mean_auc"] > 0 and run.data.tags["data.manifest_digest"]
    artifacts = {a.path for a in client.list_artifacts(result["run_id"], "plots")}
    assert "plots/roc.png" in artifacts

    image = str(next(trained_pipeline.data_dir.rglob("*.png")))
    code = ("import mlflow, json, sys; m = mlflow.pyfunc.load_model('models:/pg-roundtrip@challenger'); "
            "print(json.dumps(m.predict([sys.argv[1]]).to_dict('records')))")
    proc = subprocess.run([sys.executable, "-c", code, image], capture_output=True, text=True, cwd=tmp_path,
                          env={"MLFLOW_TRACKING_URI": mlflow_tracking, "PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(proc.stdout.strip().splitlines()[-1])[0]
    assert 0 <= row["fail_probability"] <= 1 and row["decision"] in {"pass", "fail"}


def test_register_never_writes_the_database_password(trained_pipeline, postgres_url, tmp_path, monkeypatch, capsys):
    """A PostgreSQL tracking store whose password holds `/` and `?` (SQLAlchemy reads them raw;
    urllib took them for the path): the password reaches neither registered.json (kept in git:
    dvc.yaml marks it cache: false) nor the printed summary. The local server trusts loopback,
    so any password connects."""
    from defectflow.cli import main

    work = tmp_path / "work"
    shutil.copytree(trained_pipeline.workdir, work, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    uri = postgres_url("leak").replace("postgres@", "postgres:S3cret/x?y@")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # a database store keeps artifacts under ./mlruns
    args = ["register", "--data", str(trained_pipeline.data_dir), "--workdir", str(work),
            *[a for s in ("register.model_name=pg-secret", *FAST) for a in ("--set", s)]]
    assert main(args) == 0
    out = capsys.readouterr()
    registered = (work / "registered.json").read_text()
    assert json.loads(registered)["version"] == "1"
    assert "postgres:***@127.0.0.1" in registered
    for text in (registered, out.out, out.err):
        assert "S3cret" not in text


def test_a_password_mlflow_cannot_parse_is_a_clear_config_error(postgres_url, tmp_path, monkeypatch, capsys):
    """SQLAlchemy reads a raw `[` in the password, MLflow's urllib split does not: exit 2, one
    line that says what to do, the password nowhere (it used to be a traceback from register)."""
    from defectflow.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", postgres_url("bracket").replace("postgres@", "postgres:S3c[ret@"))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "cv.json").write_text('{"gate": {"passed": true, "reasons": []}}')
    assert main(["register", "--data", str(tmp_path), "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "percent-encode" in err and "postgres:***@" in err
    assert "S3c" not in err and "Traceback" not in err
