"""Thumbnails of scored images, read only from folders the dashboard was allowed to serve.

A thumbnail is asked for by score id, never by path, and the file is located from the row's
source and relative image path. Two checks keep the dashboard from becoming a file server for
the whole disk: the source must be one of the configured image roots (or inside one), and the
image path must resolve inside the source (no '..', absolute path or escaping symlink; the same
check validation applies to labels.csv).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

from PIL import Image

from defectflow.scoring.inputs import AZURE_SCHEME
from defectflow.scoring.results import Score
from defectflow.validation.convert import to_rgb
from defectflow.validation.paths import resolve_image_path


class ThumbnailUnavailable(LookupError):
    """The image cannot (or may not) be shown; the message says why."""


@dataclass(frozen=True)
class ImageLocator:
    roots: tuple[Path, ...]  # folders thumbnails may be read from (resolved)
    blob_cache: Path  # where azure:// inputs were downloaded by batch scoring

    def locate(self, score: Score) -> Path:
        root = self._source_root(score.source)
        if not any(root.is_relative_to(allowed) for allowed in self.roots):
            raise ThumbnailUnavailable(f"input {score.source} is not among the dashboard's image roots")
        resolved = resolve_image_path(root, score.image)
        if resolved.file is None:
            raise ThumbnailUnavailable(f"{score.image}: {resolved.detail}")
        return resolved.file

    def _source_root(self, source: str) -> Path:
        if source.startswith(AZURE_SCHEME):
            return (self.blob_cache / source[len(AZURE_SCHEME):]).resolve()
        return Path(source).resolve()


class ThumbnailCache:
    """JPEG thumbnails keyed by content hash and size, least recently used evicted first."""

    def __init__(self, max_items: int = 512):
        self._items: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = Lock()
        self._max = max_items

    def get(self, path: Path, sha256: str, px: int) -> bytes:
        key = (sha256, px)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = render_thumbnail(path, px)
        with self._lock:
            self._items[key] = data
            while len(self._items) > self._max:
                self._items.popitem(last=False)
        return data


def render_thumbnail(path: Path, px: int) -> bytes:
    """A JPEG whose longest side is at most `px`."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (px, px))  # JPEG: decode at reduced scale, much faster for big photos
            thumb = to_rgb(image)
            thumb.thumbnail((px, px))
            buffer = io.BytesIO()
            thumb.save(buffer, format="JPEG", quality=85)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ThumbnailUnavailable(f"{path.name} cannot be decoded: {exc}") from None
    return buffer.getvalue()
