"""What a batch scores: the images under a folder or a blob prefix, with their metadata.

A blob prefix (`azure://<container>/<prefix>`) is downloaded into a local cache folder first
(only blobs not already there), so both inputs end up as "a folder of images" and the rest
of scoring, and the dashboard's thumbnails, read local files.
Metadata (captured_at, board_id, camera_id) comes from labels.csv when the folder has one;
images without a row are still scored, with empty metadata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from defectflow.errors import ConfigError
from defectflow.params import AzureParams
from defectflow.validation.labels import LABELS_FILE, parse_timestamp, read_labels
from defectflow.validation.paths import resolve_image_path

log = logging.getLogger(__name__)

AZURE_SCHEME = "azure://"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class ImageMeta:
    captured_at: datetime | None = None
    board_id: str | None = None
    camera_id: str | None = None


@dataclass(frozen=True)
class InputImage:
    image: str  # posix path relative to the input root
    path: Path  # the local file
    meta: ImageMeta


@dataclass(frozen=True)
class ScoringInput:
    source: str  # as given by the user: a folder or azure://container/prefix (stored with each score)
    root: Path  # the local folder the images are read from
    images: list[InputImage]


def open_input(spec: str, blob_cache: Path, azure: AzureParams | None = None) -> ScoringInput:
    """List the images of `spec` (a folder, or azure://container/prefix downloaded with `azure` settings)."""
    if spec.startswith(AZURE_SCHEME):
        source, root = spec.rstrip("/"), _download_blobs(spec, blob_cache, azure or AzureParams())
    else:
        root = Path(spec).expanduser().resolve()
        if not root.is_dir():
            raise ConfigError(f"input {spec} is not a folder; give a folder of images or azure://<container>/<prefix>")
        source = str(root)
    meta = read_metadata(root)
    images = [InputImage(rel, root / rel, meta.get(rel, ImageMeta())) for rel in list_images(root)]
    return ScoringInput(source=source, root=root, images=images)


def list_images(root: Path) -> list[str]:
    """Relative posix paths of image files under `root`, sorted; hidden entries and anything
    resolving outside `root` (symlinks) are left out."""
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.suffix.lower() not in IMAGE_SUFFIXES or any(part.startswith(".") for part in rel.parts):
            continue
        resolved = resolve_image_path(root, rel.as_posix())
        if resolved.file is None:
            log.warning("not scored: %s (%s)", rel.as_posix(), resolved.detail)
            continue
        found.append(resolved.relative)
    return sorted(found)


def read_metadata(root: Path) -> dict[str, ImageMeta]:
    """image → metadata from root/labels.csv, or {} when there is none."""
    if not (root / LABELS_FILE).is_file():
        return {}
    table = read_labels(root).rows
    meta = {}
    for row in table.itertuples(index=False):
        image = row.image.replace("\\", "/")
        meta[image] = ImageMeta(parse_timestamp(row.captured_at), row.board_id or None, row.camera_id or None)
    return meta


def _download_blobs(spec: str, blob_cache: Path, azure: AzureParams) -> Path:
    """Bring new blobs under the prefix into the cache with the ingestion code (idempotent,
    MD5-verified, label metadata merged into labels.csv); return the local folder."""
    from defectflow.azure.ingest import ingest_from_blob

    container, _, prefix = spec[len(AZURE_SCHEME):].partition("/")
    if not container:
        raise ConfigError(f"input {spec} names no container; use azure://<container>/<prefix>")
    folder = prefix.strip("/")
    target = blob_cache / container / folder
    # A prefix names a folder: "plant1" must not also match "plant10/…", and blob names below it
    # must come out relative ("cam1/x.png", not "/cam1/x.png").
    summary = ingest_from_blob(target, container, f"{folder}/" if folder else "", azure, progress=False)
    if not summary["ok"]:
        log.warning("blob download of %s was incomplete (%d rejected, %d failed); scoring what arrived",
                    spec, len(summary["rejected"]), len(summary["failed"]))
    return target.resolve()
