"""Incremental, verified, resumable copy of images and label files from a blob prefix into DEST.

`ingest_from_blob` is the one entry point (CLI `defectflow ingest`, Prefect training flow):
1. list the prefix once (metadata + index tags included) and plan: a blob is *unchanged* when the
   state records the same version (Content-MD5, else etag) at the same path and the file is there;
   *adopted* when the file is already on disk with the blob's size and MD5 (a run killed after the
   rename but before the state checkpoint, or data pulled by DVC); otherwise it is *downloaded*;
2. download with a bounded thread pool, each file streamed into a temp file, size and Content-MD5
   checked, then renamed (atomic); transient errors are retried by azure-core per request and
   again per file here, with exponential backoff;
3. checkpoint the state atomically as results arrive, and merge labels into DEST/labels.csv.
Names that would escape DEST, or that are ambiguous on disk, are rejected and reported, never written.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from defectflow.azure.blob_source import (
    BlobEntry,
    BlobSource,
    IntegrityError,
    UnsafeBlobName,
    local_md5,
    safe_relative_path,
)
from defectflow.azure.credentials import blob_service_client, describe_auth, redact
from defectflow.azure.labels import merge_labels, row_from_metadata, rows_from_label_csv
from defectflow.azure.state import STATE_DIRNAME, IngestState, exclusive_lock, state_dir
from defectflow.errors import DefectflowError, ExitCode
from defectflow.params import AzureParams

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

log = logging.getLogger(__name__)

# Temp files of defectflow.atomic (mkstemp: ".<name>.<8 random chars>.tmp") left by a killed run.
_STALE_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class BlobAccessError(DefectflowError):
    """The container cannot be listed (credentials, permissions, name, network)."""

    exit_code = ExitCode.BLOB_ACCESS


@dataclass(frozen=True)
class _Job:
    key: str
    entry: BlobEntry
    rel: PurePosixPath
    target: Path
    kind: str  # "image" | "labels"


def ingest_from_blob(
    dest: str | Path,
    container: str,
    prefix: str = "",
    params: AzureParams | None = None,
    *,
    max_workers: int | None = None,
    progress: bool = True,
    client: BlobServiceClient | None = None,
) -> dict[str, Any]:
    """Copy new images and label files under `container`/`prefix` into `dest`; return a summary dict.

    Idempotent: a second run with nothing new downloads nothing and rewrites nothing. Per-blob
    problems (hostile names, MD5 mismatches, exhausted retries) do not raise: they are listed
    under `rejected` / `failed` in the summary, and `ok` is False. Configuration problems raise
    `defectflow.errors.ConfigError`.
    """
    from azure.core.exceptions import AzureError

    params = params or AzureParams()
    dest = Path(dest)
    workers = max(1, int(max_workers or params.max_workers))
    auth = "client given by the caller" if client is not None else describe_auth(params)
    client = client or blob_service_client(params)
    started = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(dest):
        stale = _remove_stale_temps(dest)
        state = IngestState.load(state_dir(dest) / "ingest-state.json", params.state_flush_s)
        source = BlobSource(client.get_container_client(container), prefix)
        try:
            jobs, unchanged, rejected, skipped = _plan(source, container, dest, state, params)
        except AzureError as exc:
            raise BlobAccessError(f"cannot list container {container!r} prefix {prefix!r} with {auth}: "
                                  f"{_describe(exc)}; check the credentials and the container name") from None
        outcome = _run_jobs(jobs, state, params, source, workers, progress)
        state.checkpoint(force=True)
        labels = _merge_all_labels(dest, state, container)
    seconds = time.monotonic() - started
    nbytes = outcome["bytes"]
    summary = {
        "ok": not rejected and not outcome["failed"] and not labels["rejected_rows"],
        "container": container,
        "prefix": prefix,
        "dest": str(dest),
        "auth": auth,
        "listed": len(jobs) + unchanged + len(rejected) + skipped,
        "downloaded": outcome["downloaded"],
        "adopted": outcome["adopted"],
        "unchanged": unchanged,
        "skipped_not_image": skipped,
        "rejected": rejected,
        "failed": outcome["failed"],
        "stale_temp_files_removed": stale,
        "bytes_downloaded": nbytes,
        "seconds": round(seconds, 3),
        "files_per_s": round(outcome["downloaded"] / seconds, 2) if seconds else None,
        "mb_per_s": round(nbytes / 1e6 / seconds, 3) if seconds else None,
        "labels": labels,
        "state_file": str(state.path),
    }
    log.info("ingest %s/%s → %s: %d downloaded, %d adopted, %d unchanged, %d rejected, %d failed",
             container, prefix, dest, summary["downloaded"], summary["adopted"], unchanged, len(rejected),
             len(outcome["failed"]))
    return summary


def _remove_stale_temps(dest: Path) -> int:
    """Delete temp files left by a killed run (we hold the lock, so none is being written)."""
    removed = 0
    for path in dest.rglob(".*.tmp"):
        if path.is_file() and _STALE_TEMP.match(path.name):
            path.unlink()
            removed += 1
    return removed


def _plan(source: BlobSource, container: str, dest: Path, state: IngestState,
          params: AzureParams) -> tuple[list[_Job], int, list[dict[str, str]], int]:
    """Sort every listed blob into: work to do, unchanged, rejected (with reason), not an image."""
    extensions = tuple(e.lower() for e in params.image_extensions)
    jobs: list[_Job] = []
    rejected: list[dict[str, str]] = []
    unchanged = skipped = 0
    for entry in source.list():
        basename = entry.name.rsplit("/", 1)[-1]
        kind = ("labels" if basename == params.labels_blob_name
                else "image" if basename.lower().endswith(extensions) else None)
        if kind is None:
            skipped += 1
            continue
        try:
            rel = safe_relative_path(entry.name, source.prefix)
            if rel.parts[0] == STATE_DIRNAME:
                raise UnsafeBlobName(f"{STATE_DIRNAME}/ is reserved for the ingestion state")
        except UnsafeBlobName as exc:
            rejected.append({"blob": entry.name, "reason": str(exc)})
            continue
        target = (state_dir(dest) / "labels" / rel) if kind == "labels" else dest / rel
        key = f"{container}/{entry.name}"
        record = state.get(key)
        if (record and record["version"] == entry.version and record["path"] == str(rel)
                and target.is_file() and target.stat().st_size == entry.size):
            unchanged += 1
            continue
        jobs.append(_Job(key, entry, rel, target, kind))
    if rejected:
        log.warning("%d blob name(s) rejected (would escape %s or are ambiguous on disk)", len(rejected), dest)
    return jobs, unchanged, rejected, skipped


def _run_jobs(jobs: list[_Job], state: IngestState, params: AzureParams, source: BlobSource,
              workers: int, progress: bool) -> dict[str, Any]:
    """Run the jobs on a bounded pool; record each success in the state as it completes."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    outcome: dict[str, Any] = {"downloaded": 0, "adopted": 0, "bytes": 0, "failed": []}
    # One bar over bytes (so the speed column is MB/s) whose description counts files.
    bar = Progress(TextColumn("[bold]ingest {task.fields[done]}/{task.fields[files]} files"), BarColumn(),
                   DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), disable=not progress or not jobs)
    with bar, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as pool:
        task = bar.add_task("ingest", total=sum(j.entry.size for j in jobs), done=0, files=len(jobs))
        futures: dict[Future, _Job] = {pool.submit(_transfer, job, source, params): job for job in jobs}
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    how, md5 = future.result()
                except (IntegrityError, TransferFailed) as exc:
                    outcome["failed"].append({"blob": job.entry.name, "reason": redact(str(exc))})
                    log.warning("not ingested: %r: %s", job.entry.name, redact(str(exc)))
                else:
                    outcome[how] += 1
                    if how == "downloaded":
                        outcome["bytes"] += job.entry.size
                    state.put(job.key, _record(job, md5))
                    state.checkpoint()
                bar.update(task, advance=job.entry.size, done=bar.tasks[task].fields["done"] + 1)
        except BaseException:
            # Interrupted: keep what is finished (files are complete, state is checkpointed).
            for f in futures:
                f.cancel()
            state.checkpoint(force=True)
            raise
    return outcome


def _record(job: _Job, md5: str) -> dict[str, Any]:
    return {"path": str(job.rel), "kind": job.kind, "version": job.entry.version, "size": job.entry.size,
            "md5": md5, "labels": job.entry.labels, "created": job.entry.created}


class TransferFailed(Exception):
    """A blob could not be transferred: a permanent error, or transient ones through every attempt."""


def _transfer(job: _Job, source: BlobSource, params: AzureParams) -> tuple[str, str]:
    """Adopt the file already on disk if it verifies, else download it (with per-file retries)."""
    target, entry = job.target, job.entry
    if target.is_file() and target.stat().st_size == entry.size and entry.content_md5:
        md5 = local_md5(target)
        if md5 == entry.content_md5:
            return "adopted", md5
    return "downloaded", with_retries(lambda: source.download(entry, target), params, what=entry.name)


def with_retries(action: Callable[[], Any], params: AzureParams, what: str,
                 sleep: Callable[[float], None] = time.sleep) -> Any:
    """Run `action`, retrying transient transport/service errors with exponential backoff."""
    delay = params.retry_backoff_s
    for attempt in range(1, params.file_attempts + 1):
        try:
            return action()
        except Exception as exc:
            if isinstance(exc, IntegrityError):
                raise
            if not is_transient(exc):
                raise TransferFailed(_describe(exc)) from None
            if attempt == params.file_attempts:
                raise TransferFailed(f"gave up after {attempt} attempts: {_describe(exc)}") from None
            log.info("transient error on %r (attempt %d/%d), retrying in %.1fs: %s",
                     what, attempt, params.file_attempts, delay, _describe(exc))
            sleep(delay)
            delay *= params.retry_backoff_base
    raise AssertionError("unreachable")


def _describe(exc: BaseException) -> str:
    """Exception type and first message line, secrets removed (SDK errors can quote URLs)."""
    lines = redact(str(exc)).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """Network drops, timeouts, throttling and 5xx are worth retrying; 4xx and bad content are not."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, (ServiceRequestError, ServiceResponseError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, HttpResponseError):
        return exc.status_code in _TRANSIENT_STATUS
    return False


def _merge_all_labels(dest: Path, state: IngestState, container: str) -> dict[str, Any]:
    """Rebuild the incoming label rows from the state (metadata first, then CSV blobs) and merge them."""
    incoming: list[dict[str, str]] = []
    csv_rows: list[dict[str, str]] = []
    rejected_rows: list[dict[str, Any]] = []
    for key, record in state.records.items():
        if not key.startswith(f"{container}/"):
            continue
        if record["kind"] == "image":
            row = row_from_metadata(record["path"], record.get("labels") or {}, record.get("created"))
            if row:
                incoming.append(row)
        else:
            good, bad = rows_from_label_csv(state_dir(dest) / "labels" / record["path"], PurePosixPath(record["path"]))
            csv_rows += good
            rejected_rows += bad
    counts = merge_labels(dest, incoming + csv_rows)
    return {**counts, "rejected_rows": rejected_rows}
