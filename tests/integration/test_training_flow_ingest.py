"""The training flow's ingest task (azure.container set) against Azurite, run as a Prefect task
on the session's server: images and labels land in the data folder, a second run fetches nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.fixtures.azurite import upload_folder

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_ingest_task_brings_the_container_into_the_data_folder(prefect_server, azurite, blob_container, tmp_path,
                                                               monkeypatch):
    from defectflow.params import Params
    from defectflow.synth import generate

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    for name in ("AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    upload = tmp_path / "upload"
    generate(upload, 12, seed=4, image_size=48, days=2)
    uploaded = upload_folder(blob_container, upload, prefix="line1/")
    monkeypatch.syspath_prepend(str(REPO))
    sys.modules.pop("flows.training", None)
    from flows.training import ingest_task  # imported once PREFECT_API_URL names the session's server

    params = Params.load("params.yaml", [f"azure.container={blob_container.container_name}", "azure.prefix=line1/"])
    data = tmp_path / "data"
    assert ingest_task(params, data) == data
    images = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png"))
    assert images == sorted(name.removeprefix("line1/") for name in uploaded if name.endswith(".png"))
    assert (data / "labels.csv").read_text().count("\n") == 13  # header + one row per image
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*.png")}
    assert ingest_task(params, data) == data
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*.png")} == before  # nothing fetched again
