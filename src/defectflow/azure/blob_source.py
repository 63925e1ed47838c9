"""List and download the blobs under a container prefix, safely and verifiably.

Shared by ingestion (copy into the DVC-tracked data folder) and batch scoring (read new images
from a prefix). Every blob name is turned into a relative local path by `safe_relative_path`,
which refuses anything that could escape the destination or that is ambiguous on disk.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from defectflow.atomic import atomic_path

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

# Blob metadata / index-tag keys that carry label information (see docs/azure.md).
LABEL_FIELDS = ("label", "captured_at", "board_id", "camera_id")
_MAX_SEGMENT_BYTES = 255  # NAME_MAX on Linux filesystems
_CHUNK = 4 * 1024 * 1024


class UnsafeBlobName(ValueError):
    """The blob name cannot be mapped to a path inside the destination."""


class IntegrityError(Exception):
    """Downloaded content does not match the blob's size or Content-MD5."""


def safe_relative_path(name: str, prefix: str = "") -> PurePosixPath:
    """Map a blob name (under `prefix`) to a relative POSIX path, or raise `UnsafeBlobName` saying why.

    Rejected: empty names, absolute paths, drive letters, backslashes, `.`/`..`/empty segments,
    control and format characters (NUL, tabs, bidi overrides, zero-width), names that change
    under NFKC normalisation (look-alikes such as a fullwidth solidus), over-long segments.
    """
    if prefix and not name.startswith(prefix):
        raise UnsafeBlobName(f"not under prefix {prefix!r}")
    rel = name[len(prefix):]
    if not rel:
        raise UnsafeBlobName("empty name")
    unsafe_categories = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
    bad = sorted({f"U+{ord(ch):04X}" for ch in rel if unicodedata.category(ch) in unsafe_categories})
    if bad:
        raise UnsafeBlobName(f"control/format characters {', '.join(bad)}")
    if unicodedata.normalize("NFKC", rel) != rel:
        raise UnsafeBlobName("characters that change under Unicode NFKC normalisation (look-alike characters)")
    if "\\" in rel:
        raise UnsafeBlobName("backslash in name")
    if rel.startswith("/"):
        raise UnsafeBlobName("absolute path")
    if len(rel) >= 2 and rel[1] == ":":
        raise UnsafeBlobName("drive letter")
    segments = rel.split("/")
    for segment in segments:
        if segment in {"", ".", ".."}:
            raise UnsafeBlobName(f"path segment {segment!r} (empty, '.' or '..')")
        if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            raise UnsafeBlobName(f"path segment longer than {_MAX_SEGMENT_BYTES} bytes")
    return PurePosixPath(*segments)


@dataclass(frozen=True)
class BlobEntry:
    """What ingestion needs to know about one blob, from a single listing call."""

    name: str
    size: int
    etag: str
    content_md5: str | None  # base64, as Azure reports it; None when the uploader did not set it
    labels: dict[str, str] = field(default_factory=dict)  # LABEL_FIELDS found in metadata / tags
    created: str | None = None  # ISO-8601 creation time: the captured_at fallback for metadata labels

    @property
    def version(self) -> str:
        """Identity of this blob's content: the MD5 when known, else the etag."""
        return f"md5:{self.content_md5}" if self.content_md5 else f"etag:{self.etag}"


def _labels_from(metadata: dict[str, str] | None, tags: dict[str, str] | None) -> dict[str, str]:
    """Label fields from index tags, overridden by metadata (metadata is set atomically with the upload)."""
    found: dict[str, str] = {}
    for source in (tags or {}, metadata or {}):
        lowered = {k.lower(): v for k, v in source.items()}
        found.update({k: lowered[k] for k in LABEL_FIELDS if lowered.get(k)})
    return found


def _entry(props: Any) -> BlobEntry:
    md5 = props.content_settings.content_md5 if props.content_settings else None
    return BlobEntry(
        name=props.name,
        size=int(props.size),
        etag=str(props.etag).strip('"'),
        content_md5=base64.b64encode(bytes(md5)).decode("ascii") if md5 else None,
        labels=_labels_from(props.metadata, getattr(props, "tags", None)),
        created=props.creation_time.isoformat() if getattr(props, "creation_time", None) else None,
    )


class BlobSource:
    """The blobs of one container under one prefix."""

    def __init__(self, container: ContainerClient, prefix: str = "", with_tags: bool = True):
        self.container = container
        self.prefix = prefix
        self.with_tags = with_tags

    def list(self) -> Iterator[BlobEntry]:
        """Every blob under the prefix (one listing call per page, metadata and tags included)."""
        include = ["metadata", "tags"] if self.with_tags else ["metadata"]
        for props in self.container.list_blobs(name_starts_with=self.prefix or None, include=include):
            yield _entry(props)

    def iter_images(self, extensions: tuple[str, ...]) -> Iterator[tuple[BlobEntry, PurePosixPath]]:
        """Image blobs with their safe relative paths; unsafe names are skipped (ingestion reports them)."""
        wanted = tuple(e.lower() for e in extensions)
        for entry in self.list():
            if entry.name.lower().endswith(wanted):
                try:
                    yield entry, safe_relative_path(entry.name, self.prefix)
                except UnsafeBlobName:
                    continue

    def read_bytes(self, entry: BlobEntry) -> bytes:
        """The blob's content, checked against its listed size and MD5 (for scoring straight from Blob)."""
        data = self._downloader(entry).readall()
        verify(entry, len(data), hashlib.md5(data))
        return data

    def download(self, entry: BlobEntry, target: Path) -> str:
        """Stream the blob into `target` atomically; verify size and MD5 before the rename.

        Returns the local MD5 (base64). The download is pinned to the listed etag, so a blob
        overwritten mid-transfer fails (HTTP 412) instead of producing a mixed file.
        """
        digest = hashlib.md5()
        written = 0
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                for chunk in self._downloader(entry).chunks():
                    fh.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
            verify(entry, written, digest)
        return base64.b64encode(digest.digest()).decode("ascii")

    def _downloader(self, entry: BlobEntry) -> Any:
        from azure.core import MatchConditions

        return self.container.download_blob(
            entry.name, etag=f'"{entry.etag}"', match_condition=MatchConditions.IfNotModified,
            max_concurrency=1,
        )


def verify(entry: BlobEntry, size: int, digest: Any) -> None:
    """Raise `IntegrityError` unless the size matches and, where the blob has one, the Content-MD5."""
    if size != entry.size:
        raise IntegrityError(f"size mismatch: listed {entry.size} bytes, received {size}")
    if entry.content_md5:
        got = base64.b64encode(digest.digest()).decode("ascii")
        if got != entry.content_md5:
            raise IntegrityError(f"Content-MD5 mismatch: blob says {entry.content_md5}, content hashes to {got}")


def local_md5(path: Path) -> str:
    """Base64 MD5 of a local file (Azure's Content-MD5 encoding)."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")
