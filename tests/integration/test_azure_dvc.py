"""DVC with its remote on Azure Blob (Azurite): ingest from Blob → `dvc add` → `dvc repro` → `dvc push`;
a fresh clone `dvc pull`s the same bytes and a forced `dvc repro` recomputes the same features and metrics.
The connection string lives only in `.dvc/config.local` (first checkout) or the environment (clone)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.azurite import assert_no_secrets, upload_folder
from tests.fixtures.pipeline import FAST_OVERRIDES, copy_stage_code

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GIT_ID = ["-c", "user.name=defectflow-test", "-c", "user.email=test@defectflow.invalid"]
# What the plant repository versions: the ingested data, the features and the metrics.
COMPARED = ["data/demo/labels.csv", "work/demo/features.parquet", "work/demo/metrics/cv.json",
            "work/demo/manifest.parquet"]


def run(cwd: Path, *argv: str, env: dict[str, str]) -> str:
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def digests(root: Path, rels: list[str]) -> dict[str, str]:
    return {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in rels}


def tree_digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def plant_project(path: Path) -> None:
    """A git + DVC repository with this repo's pipeline, whose data comes from `dvc add` instead of synth."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stages["stages"].pop("synth")
    (path / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False))
    copy_stage_code(path)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for item in [*FAST_OVERRIDES, "gate.min_auc=0.0", "gate.min_fold_auc=0.0"]:
        key, _, raw = item.partition("=")
        node = params
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    (path / "params.yaml").write_text(yaml.safe_dump(params))


def test_dvc_remote_on_azure_round_trip_reproduces_features_and_metrics(azurite, tmp_path, make_dataset):
    service = azurite.service()
    cameras = service.create_container("camera-uploads")
    service.create_container("dvc-remote")  # DVC does not create the container
    upload_folder(cameras, make_dataset(n=160, image_size=64, seed=3, days=16))

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_STORAGE_", "MLFLOW_TRACKING"))}
    base_env["PATH"] = f"{BIN}:{base_env['PATH']}"
    secret_env = {**base_env, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    project = tmp_path / "plant"
    project.mkdir()
    plant_project(project)
    outputs = [
        run(project, "git", "init", "-q", env=base_env),
        run(project, "dvc", "init", "-q", env=base_env),
        run(project, "dvc", "remote", "add", "-d", "azure", "azure://dvc-remote/defectflow", env=base_env),
        run(project, "dvc", "remote", "modify", "--local", "azure", "connection_string", azurite.connection_string,
            env=base_env),
        run(project, "defectflow", "ingest", "--container", "camera-uploads", "--dest", "data/demo", "--no-progress",
            env=secret_env),
        run(project, "dvc", "add", "data/demo", env=base_env),
        run(project, "dvc", "repro", "evaluate", env=base_env),
    ]
    config = (project / ".dvc" / "config").read_text()
    assert "azure://dvc-remote/defectflow" in config and "connection_string" not in config
    assert azurite.account_key in (project / ".dvc" / "config.local").read_text()
    outputs += [
        run(project, "git", "add", "-A", env=base_env),
        run(project, "git", *GIT_ID, "commit", "-q", "-m", "ingested data + pipeline", env=base_env),
        run(project, "dvc", "push", env=base_env),
    ]
    pushed = [b.name for b in service.get_container_client("dvc-remote").list_blobs()]
    assert len(pushed) > 160, "the data, features and model should be in the Azure remote"

    clone = tmp_path / "clone"
    outputs += [
        run(tmp_path, "git", "clone", "-q", str(project), str(clone), env=base_env),
        # The clone has no config.local: the connection string comes from the environment only.
        run(clone, "dvc", "pull", env=secret_env),
    ]
    assert tree_digests(clone / "data/demo") == tree_digests(project / "data/demo")
    assert digests(clone, COMPARED) == digests(project, COMPARED)

    outputs.append(run(clone, "dvc", "repro", "--force", "evaluate", env=base_env))
    assert "Running stage 'featurize'" in outputs[-1] and "Running stage 'evaluate'" in outputs[-1]
    assert digests(clone, COMPARED) == digests(project, COMPARED), "recomputed features/metrics differ"

    history = run(project, "git", "log", "-p", "--all", env=base_env)
    scanned = assert_no_secrets([azurite.account_key], paths=[clone, project / ".dvc" / "config", project / "data"],
                                texts=[history, *outputs])
    assert scanned > 160
