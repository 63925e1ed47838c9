"""`defectflow ingest` against a real Azurite: full copy, no-op re-run, kill + resume, corruption,
hostile names, the three secret-bearing credential modes, and a scan for leaked secrets."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from defectflow.azure.ingest import ingest_from_blob
from defectflow.params import AzureParams
from tests.fixtures.azurite import assert_no_secrets, upload_folder

pytestmark = pytest.mark.integration

N_IMAGES = 300
DEFECTFLOW = Path(sys.executable).with_name("defectflow")


@pytest.fixture(scope="module")
def camera_upload(tmp_path_factory) -> Path:
    """A few hundred real synthetic board images with labels.csv, as a camera PC would upload them."""
    from defectflow.synth import generate

    out = tmp_path_factory.mktemp("camera_upload")
    generate(out, N_IMAGES, 5, image_size=64)
    return out


@pytest.fixture
def conn_env(azurite, monkeypatch) -> dict[str, str]:
    for name in ("AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return dict(os.environ)


def sha256_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*.png") if p.is_file()}


def label_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r["image"]: {k: r[k] for k in ("label", "captured_at", "board_id", "camera_id")}
                for r in csv.DictReader(fh)}


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(DEFECTFLOW), *args], env=env, capture_output=True, text=True, timeout=300)


def test_full_ingest_then_rerun_transfers_nothing(azurite, blob_container, camera_upload, conn_env, tmp_path):
    upload_folder(blob_container, camera_upload, prefix="line1/")
    dest = tmp_path / "data"
    params = AzureParams(max_workers=8)

    first = ingest_from_blob(dest, blob_container.container_name, "line1/", params, progress=False)

    assert first["ok"], first
    assert first["downloaded"] == N_IMAGES + 1  # images + the labels.csv blob
    assert sha256_tree(dest) == sha256_tree(camera_upload)
    assert label_rows(dest / "labels.csv") == label_rows(camera_upload / "labels.csv")
    print(f"\nAZURITE INGEST THROUGHPUT: {first['downloaded']} files, {first['bytes_downloaded'] / 1e6:.2f} MB in "
          f"{first['seconds']} s = {first['files_per_s']} files/s, {first['mb_per_s']} MB/s (8 workers)")

    state_file = Path(first["state_file"])
    before = {p: p.stat().st_mtime_ns for p in (state_file, dest / "labels.csv")}
    second = ingest_from_blob(dest, blob_container.container_name, "line1/", params, progress=False)
    assert (second["downloaded"], second["adopted"], second["unchanged"]) == (0, 0, N_IMAGES + 1)
    assert {p: p.stat().st_mtime_ns for p in before} == before, "a no-op re-run must not rewrite anything"
    assert second["labels"]["written"] is False


def test_labels_from_blob_metadata_keep_existing_rows(blob_container, camera_upload, conn_env, tmp_path):
    upload_folder(blob_container, camera_upload, metadata_from_labels=True)
    dest = tmp_path / "data"
    (dest / "manual").mkdir(parents=True)
    (dest / "manual" / "old.png").write_bytes((camera_upload / next(iter(sha256_tree(camera_upload)))).read_bytes())
    (dest / "labels.csv").write_text("image,label,captured_at\nmanual/old.png,fail,2026-08-01T00:00:00Z\n")

    summary = ingest_from_blob(dest, blob_container.container_name, "", AzureParams(), progress=False)

    rows = label_rows(dest / "labels.csv")
    assert rows.pop("manual/old.png")["label"] == "fail"  # a row that was already there is kept
    assert rows == label_rows(camera_upload / "labels.csv")
    assert summary["labels"]["added"] == N_IMAGES


def test_killed_mid_way_then_resumed(azurite, blob_container, camera_upload, conn_env, tmp_path):
    upload_folder(blob_container, camera_upload)
    dest = tmp_path / "data"
    args = ["ingest", "--container", blob_container.container_name, "--dest", str(dest), "--max-workers", "1",
            "--no-progress"]
    log = open(tmp_path / "killed-run.log", "wb")
    proc = subprocess.Popen([str(DEFECTFLOW), *args], env=conn_env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(1 for _ in dest.rglob("*.png")) >= 40:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    assert proc.returncode == -signal.SIGKILL, "the first run finished before it could be killed"
    copied_before_kill = len(sha256_tree(dest))
    assert 0 < copied_before_kill < N_IMAGES

    done = run_cli([*args[:-3], "--max-workers", "8", "--no-progress", "--json"], conn_env)

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["downloaded"] + summary["adopted"] + summary["unchanged"] == N_IMAGES + 1
    assert summary["downloaded"] <= N_IMAGES + 1 - copied_before_kill  # nothing fetched twice
    assert sha256_tree(dest) == sha256_tree(camera_upload)  # every file complete, none extra
    assert not list(dest.rglob("*.tmp")), "temp files of the killed run must be cleaned up"
    assert label_rows(dest / "labels.csv") == label_rows(camera_upload / "labels.csv")
    assert_no_secrets([azurite.account_key], paths=[tmp_path], texts=[done.stdout, done.stderr])


def test_corrupted_blob_is_reported_not_ingested(blob_container, camera_upload, conn_env, tmp_path):
    from azure.storage.blob import ContentSettings

    uploaded = upload_folder(blob_container, camera_upload)
    victim = sorted(n for n in uploaded if n.endswith(".png"))[7]
    blob = blob_container.get_blob_client(victim)
    blob.set_http_headers(ContentSettings(content_md5=hashlib.md5(b"what the camera meant to send").digest()))
    dest = tmp_path / "data"

    summary = ingest_from_blob(dest, blob_container.container_name, "", AzureParams(), progress=False)

    assert not summary["ok"]
    assert [f["blob"] for f in summary["failed"]] == [victim]
    assert "Content-MD5 mismatch" in summary["failed"][0]["reason"]
    assert not (dest / victim).exists() and not list(dest.rglob("*.tmp"))
    assert victim not in label_rows(dest / "labels.csv")  # its row waits for the image
    assert summary["labels"]["pending"] == 1

    blob.set_http_headers(ContentSettings(content_md5=hashlib.md5(uploaded[victim]).digest()))
    fixed = ingest_from_blob(dest, blob_container.container_name, "", AzureParams(), progress=False)
    assert fixed["ok"] and fixed["downloaded"] == 1
    assert sha256_tree(dest) == sha256_tree(camera_upload)


HOSTILE = {
    "/abs.png": "absolute path",
    "a\\..\\..\\escape.png": "'..'",  # Azurite stores backslashes as '/': the listing says a/../../escape.png
    "a//double.png": "empty",
    "a/tab\t.png": "U+0009",
    "a/rtl\u202egnp.png": "U+202E",
    "a/full\uff0f..\uff0fwidth.png": "NFKC",
    ".defectflow/x.png": "reserved",
}


def test_hostile_blob_names_are_rejected_and_reported(blob_container, conn_env, tmp_path):
    for name in HOSTILE:
        blob_container.upload_blob(name, b"\x89PNG not really")
    blob_container.upload_blob("ok/good.png", b"\x89PNG fine")
    blob_container.upload_blob("labels.csv", "image,label,captured_at\nok/good.png,pass,2026-09-01T00:00:00Z\n"
                                             "../../etc/passwd.png,fail,2026-09-01T00:00:00Z\n")
    dest = tmp_path / "sandbox" / "data"

    result = run_cli(["ingest", "--container", blob_container.container_name, "--dest", str(dest), "--json"], conn_env)

    assert result.returncode == 11, result.stderr
    summary = json.loads(result.stdout)
    reasons = {r["blob"].replace("/", "\\") if "escape" in r["blob"] else r["blob"]: r["reason"]
               for r in summary["rejected"]}
    assert set(reasons) == set(HOSTILE)
    for name, why in HOSTILE.items():
        assert why in reasons[name], (name, reasons[name])
    assert [r["image"] for r in summary["labels"]["rejected_rows"]] == ["../../etc/passwd.png"]
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                     if p.is_file() and ".defectflow" not in p.parts)
    assert written == ["sandbox/data/labels.csv", "sandbox/data/ok/good.png"]
    assert "not ingested" in result.stderr


@pytest.mark.parametrize("mode", ["sas", "account_key"])
def test_secret_credentials_never_appear_in_output(azurite, blob_container, camera_upload, tmp_path, mode):
    upload_folder(blob_container, camera_upload, prefix="p/")
    sas = azurite.container_sas(blob_container.container_name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_STORAGE_")}
    env["AZURE_STORAGE_ACCOUNT_URL"] = azurite.account_url
    if mode == "sas":
        env["AZURE_STORAGE_SAS_TOKEN"] = sas
    else:
        env["AZURE_STORAGE_KEY"] = azurite.account_key
    dest, report = tmp_path / "data", tmp_path / "report.json"
    base = ["ingest", "--container", blob_container.container_name, "--prefix", "p/", "--dest", str(dest),
            "--set", f"azure.auth={mode}"]

    ok = run_cli(["-v", *base, "--report", str(report), "--json"], env)  # -v: azure-core logs every request
    wrong_key = base64.b64encode(b"not the account key, 64 bytes long......................").decode()
    bad_env = {**env, "AZURE_STORAGE_SAS_TOKEN": sas.replace("sig=", "sig=AAAA"), "AZURE_STORAGE_KEY": wrong_key}
    denied = run_cli(["-v", *base], bad_env)

    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["downloaded"] == N_IMAGES + 1
    assert mode in json.loads(ok.stdout)["auth"]
    assert denied.returncode == 12 and "Traceback" not in denied.stderr
    assert "cannot list" in denied.stderr
    secrets = [azurite.account_key, wrong_key, sas, sas.replace("sig=", "sig=AAAA")]
    secrets += [part.split("=", 1)[1] for part in sas.split("&") if part.startswith("sig=")]
    scanned = assert_no_secrets(secrets, paths=[dest, report],
                                texts=[ok.stdout, ok.stderr, denied.stdout, denied.stderr])
    assert scanned >= N_IMAGES + 3  # images, labels, state, report
