"""Ingestion state file, destination lock, label merging and the retry policy (no server needed)."""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from defectflow.azure.blob_source import IntegrityError
from defectflow.azure.ingest import TransferFailed, with_retries
from defectflow.azure.labels import merge_labels, rows_from_label_csv
from defectflow.azure.state import IngestState, IngestStateError, exclusive_lock
from defectflow.params import AzureParams


def test_state_checkpoints_atomically_and_only_when_changed(tmp_path):
    path = tmp_path / ".defectflow" / "ingest-state.json"
    state = IngestState.load(path, flush_s=3600)
    state.put("c/a.png", {"path": "a.png", "version": "md5:x"})
    state.checkpoint()
    assert not path.exists(), "not yet due"
    state.checkpoint(force=True)
    assert IngestState.load(path).records == {"c/a.png": {"path": "a.png", "version": "md5:x"}}
    mtime = path.stat().st_mtime_ns
    state.put("c/a.png", {"path": "a.png", "version": "md5:x"})  # same record: nothing to write
    state.checkpoint(force=True)
    assert path.stat().st_mtime_ns == mtime
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_unreadable_state_explains_how_to_recover(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(IngestStateError, match="move it aside and re-run"):
        IngestState.load(path)


def test_a_second_ingest_into_the_same_destination_is_refused(tmp_path):
    with exclusive_lock(tmp_path), pytest.raises(IngestStateError, match="another ingest"):
        with exclusive_lock(tmp_path):
            pass
    with exclusive_lock(tmp_path):  # released afterwards
        pass


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_merge_keeps_existing_rows_updates_changed_ones_and_holds_back_missing_images(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(b"img")
    (tmp_path / "labels.csv").write_text("image,label,captured_at,note\n"
                                         "a.png,pass,2026-01-01,kept\nb.png,pass,2026-01-02,x\n")
    counts = merge_labels(tmp_path, [
        {"image": "b.png", "label": "fail", "captured_at": "2026-01-02"},   # corrected upstream
        {"image": "c.png", "label": "pass", "captured_at": "2026-01-03", "board_id": "B1"},
        {"image": "later.png", "label": "fail", "captured_at": "2026-01-04"},  # image not here yet
    ])
    assert counts == {"rows": 3, "added": 1, "updated": 1, "pending": 1, "written": True}
    rows = {r["image"]: r for r in _rows(tmp_path / "labels.csv")}
    assert rows["a.png"]["note"] == "kept" and rows["b.png"]["label"] == "fail" and rows["b.png"]["note"] == "x"
    assert rows["c.png"]["board_id"] == "B1" and "later.png" not in rows
    mtime = (tmp_path / "labels.csv").stat().st_mtime_ns
    again = merge_labels(tmp_path, [{"image": "c.png", "label": "pass", "captured_at": "2026-01-03", "board_id": "B1"}])
    assert again["written"] is False and (tmp_path / "labels.csv").stat().st_mtime_ns == mtime


def test_label_csv_paths_are_relative_to_the_csv_and_hostile_rows_rejected(tmp_path):
    staged = tmp_path / "labels.csv"
    staged.write_text("image,label,captured_at\nimg/1.png,pass,t\n../../etc/passwd,fail,t\n/abs.png,fail,t\n")
    good, bad = rows_from_label_csv(staged, PurePosixPath("line1/labels.csv"))
    assert [r["image"] for r in good] == ["line1/img/1.png"]
    assert [(r["line"], r["image"]) for r in bad] == [(3, "../../etc/passwd"), (4, "/abs.png")]


def test_transient_errors_are_retried_with_exponential_backoff():
    params = AzureParams(file_attempts=3, retry_backoff_s=0.5, retry_backoff_base=2.0)
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ServiceResponseError("connection reset by peer")
        return "md5"

    assert with_retries(flaky, params, "x.png", sleep=sleeps.append) == "md5"
    assert sleeps == [0.5, 1.0]


def test_permanent_errors_are_not_retried_and_exhaustion_is_reported():
    params = AzureParams(file_attempts=3)
    forbidden = HttpResponseError("forbidden")
    forbidden.status_code = 403
    sleeps: list[float] = []

    def deny():
        raise forbidden

    with pytest.raises(TransferFailed, match="HttpResponseError"):
        with_retries(deny, params, "x.png", sleep=sleeps.append)
    assert sleeps == []

    def corrupt():
        raise IntegrityError("Content-MD5 mismatch")

    with pytest.raises(IntegrityError):
        with_retries(corrupt, params, "x.png", sleep=sleeps.append)

    def down():
        raise ServiceResponseError("timed out")

    with pytest.raises(TransferFailed, match="gave up after 3 attempts"):
        with_retries(down, params, "x.png", sleep=sleeps.append)
    assert len(sleeps) == 2
