"""`defectflow build-image --kind batch`: the defectflow-batch image infra/k8s deploys, built on a
real Docker engine and run the way the CronJob and the dashboard Deployment run it."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest
import sqlalchemy as sa
import yaml

from defectflow.cli import main
from tests.fixtures.services import free_port

pytestmark = pytest.mark.integration


def test_batch_image_scores_into_postgres_and_serves_the_dashboard(docker_engine, edge_bundle, defect_model,
                                                                   postgres_url, mlflow_server, tmp_path, capsys):
    code = main(["build-image", "--kind", "batch", "--bundle", str(edge_bundle), "--tag", "defectflow-batch",
                 "--docker-url", docker_engine.base_url, "--base-image", docker_engine.base_image, "--json"])
    assert code == 0
    shipped = json.loads(capsys.readouterr().out)
    assert shipped["reference"] == f"defectflow-batch:v{defect_model.version}"
    assert shipped["smoke"] == {"scored": 1, "model_version": defect_model.version, "dashboard": "200"}

    images = tmp_path / "images"
    images.mkdir()
    for path in defect_model.images[:8]:
        shutil.copy(path, images / path.name)
    images.chmod(0o755)
    results = postgres_url("batch_image")
    docker = docker_engine.client()
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    volumes = {str(images): {"bind": "/data", "mode": "ro"}}
    # The CronJob's command line (infra/k8s/base/cronjob-scoring.yaml), with a folder for the blob prefix.
    out = docker.containers.run(shipped["reference"], ["score", "--input", "/data", "--model", "/opt/defectflow/model",
                                                       "--results", results, "--json"],
                                environment=env, volumes=volumes, network_mode="host", remove=True)
    summary = json.loads(out.decode()[out.decode().index("{"):])
    assert (summary["images"], summary["scored"]) == (8, 8)
    with sa.create_engine(results).connect() as conn:
        assert conn.execute(sa.text("select count(*) from scores")).scalar() == 8

    port = free_port()
    dashboard = docker.containers.run(shipped["reference"], ["dashboard", "--host", "127.0.0.1", "--port", str(port),
                                                             "--results", results, "--images", "/data"],
                                      environment=env, volumes=volumes, network_mode="host", detach=True)
    try:
        deadline, page = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/dashboard", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert page is not None and page.status_code == 200, dashboard.logs(tail=40).decode(errors="replace")
        assert defect_model.images[0].name in page.text or "8" in page.text
    finally:
        dashboard.remove(force=True)
        docker.close()


def test_the_manifests_run_the_batch_image_as_built():
    """infra/k8s names the image build-image --kind batch makes and runs its bundle, not a models:/ URI
    (the image has no torch to load the pyfunc)."""
    from defectflow.packaging.image import KINDS, REPO_ROOT

    base = REPO_ROOT / "infra" / "k8s" / "base"
    cron = yaml.safe_load((base / "cronjob-scoring.yaml").read_text())
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "defectflow-batch"
    config = next(d for d in yaml.safe_load_all((base / "configmap.yaml").read_text())
                  if d["metadata"]["name"] == "defectflow-config")["data"]
    assert config["SCORING_MODEL"] == "/opt/defectflow/model"
    assert "COPY bundle/ /opt/defectflow/model/" in KINDS["batch"].dockerfile.read_text()
    dash = yaml.safe_load((base / "dashboard-deployment.yaml").read_text())
    assert dash["spec"]["template"]["spec"]["containers"][0]["image"] == "defectflow-batch"
