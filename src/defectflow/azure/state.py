"""The ingestion state file: which blob version was copied to which local file.

It lives inside the destination (`DEST/.defectflow/ingest-state.json`) so that it is versioned
with the data by DVC: a `dvc pull` on another machine brings the state along and the next
ingest there stays incremental. It is rewritten atomically (temp file + rename) at most every
`state_flush_s` seconds and at the end, so a killed run leaves the previous complete state. Files
copied after the last checkpoint are not lost work: the next run finds them on disk, checks them
against the blob's size and MD5, and adopts them without downloading again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from defectflow.atomic import write_json
from defectflow.errors import DefectflowError, ExitCode

STATE_FORMAT = 1
STATE_DIRNAME = ".defectflow"


class IngestStateError(DefectflowError):
    """The state file is unreadable or another ingest holds the destination."""

    exit_code = ExitCode.INGEST_STATE


def state_dir(dest: Path) -> Path:
    return dest / STATE_DIRNAME


class IngestState:
    """Blob key (`container/name`) → record of the copy; checkpointed atomically."""

    def __init__(self, path: Path, records: dict[str, dict[str, Any]], flush_s: float = 2.0):
        self.path = path
        self.records = records
        self.flush_s = flush_s
        self._dirty = False
        self._last_flush = time.monotonic()

    @classmethod
    def load(cls, path: Path, flush_s: float = 2.0) -> IngestState:
        if not path.exists():
            return cls(path, {}, flush_s)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != STATE_FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {STATE_FORMAT}")
            records = dict(doc["blobs"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IngestStateError(
                f"ingestion state {path} is unreadable ({exc}); move it aside and re-run: files already in "
                "the destination are verified against their blobs and adopted without downloading again"
            ) from None
        return cls(path, records, flush_s)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        if self.records.get(key) != record:
            self.records[key] = record
            self._dirty = True

    def checkpoint(self, force: bool = False) -> None:
        """Write the state if it changed and `flush_s` has passed (or `force`)."""
        if self._dirty and (force or time.monotonic() - self._last_flush >= self.flush_s):
            write_json(self.path, {"format": STATE_FORMAT, "blobs": dict(sorted(self.records.items()))})
            self._dirty = False
            self._last_flush = time.monotonic()


@contextlib.contextmanager
def exclusive_lock(dest: Path) -> Iterator[None]:
    """Hold an advisory lock on DEST for the whole run, so two ingests never write the same files."""
    lock_path = state_dir(dest) / "ingest.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IngestStateError(f"another ingest is writing into {dest} (lock {lock_path}); "
                                   "wait for it to finish") from None
        yield
    finally:
        os.close(fd)
