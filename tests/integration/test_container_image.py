"""Build, smoke-test, push and pull back the scoring image on a real Docker engine + registry."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

pytestmark = pytest.mark.integration


def test_build_smoke_push_and_pull_back_by_digest(docker_engine, defect_model):
    from mlflow import MlflowClient

    from defectflow.packaging.image import DIGEST_TAG, ship_model_image

    started = time.perf_counter()
    shipped = ship_model_image(repository="defectflow-scoring", model_uri=defect_model.model_uri,
                               registry=docker_engine.registry, push=True, docker_url=docker_engine.base_url,
                               tracking_uri=defect_model.tracking_uri)
    elapsed = time.perf_counter() - started
    print(f"\nbuild+smoke+push+pull: {elapsed:.1f}s {shipped.seconds}; image {shipped.size_bytes / 1e6:.0f} MB")

    assert shipped.reference == f"{docker_engine.registry}/defectflow-scoring:v{defect_model.version}"
    assert shipped.smoke["prediction"]["decision"] in {"pass", "fail"}
    assert shipped.smoke["prediction"]["model_version"] == defect_model.version
    assert shipped.smoke["health"] == "healthy" and shipped.smoke["user"] == "10001:10001"
    assert shipped.digest and shipped.digest.startswith("sha256:")

    # The registry lists the tag, and the MLflow model version carries the pushed digest.
    with urllib.request.urlopen(f"http://{docker_engine.registry}/v2/defectflow-scoring/tags/list") as resp:
        assert f"v{defect_model.version}" in json.load(resp)["tags"]
    client = MlflowClient(tracking_uri=defect_model.tracking_uri, registry_uri=defect_model.tracking_uri)
    tags = client.get_model_version(defect_model.name, defect_model.version).tags
    assert tags[DIGEST_TAG] == shipped.pushed_reference

    # Forget the image locally, then get it back from the registry by digest alone.
    docker = docker_engine.client()
    docker.images.remove(shipped.image_id, force=True)
    pulled = docker.images.pull(shipped.pushed_reference)
    assert pulled.id == shipped.image_id
    labels = pulled.attrs["Config"]["Labels"]
    assert labels["org.defectflow.model.version"] == defect_model.version
    # The image runs as a non-root user and carries neither torch nor MLflow.
    probe = ("import importlib.util as u, os; "
             "print(os.getuid(), [m for m in ('torch', 'mlflow', 'lightgbm') if u.find_spec(m)])")
    out = docker.containers.run(shipped.pushed_reference, ["python3", "-c", probe], network_mode="host", remove=True)
    assert out.decode().strip() == "10001 []"
    docker.close()
