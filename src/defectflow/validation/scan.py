"""Per-image checks: hash the bytes, read the header, enforce size limits, decode fully.

Each check returns the first problem found as a Reason plus a human detail, and fills in
every fact it could establish (sha256, size, mode...) so the manifest is informative even
for quarantined rows. Files are only ever opened for reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from defectflow.hashing import sha256_file
from defectflow.inference.images import ImageLimits, header_problem
from defectflow.params import ValidateParams
from defectflow.validation.convert import UnconvertibleModeError, to_rgb
from defectflow.validation.reasons import Reason


@dataclass(frozen=True)
class ImageFacts:
    bytes: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    format: str | None = None
    reason: Reason | None = None
    detail: str | None = None



def check_image(path: Path, params: ValidateParams) -> ImageFacts:
    """Run every per-file check on `path` (a regular file inside the data folder).

    Expects the caller to have set Image.MAX_IMAGE_PIXELS and ImageFile.LOAD_TRUNCATED_IMAGES
    (process-wide settings, see stage.pillow_limits) so that threads do not race on them.
    """
    size = path.stat().st_size
    if size == 0:
        return ImageFacts(bytes=0, reason=Reason.ZERO_BYTE, detail="0 bytes")
    sha = sha256_file(path)
    facts = {"bytes": size, "sha256": sha}
    try:
        with Image.open(path) as image:
            facts |= {"width": image.width, "height": image.height, "mode": image.mode, "format": image.format}
            problem = _header_problem(image, params)
            if problem is not None:
                return ImageFacts(**facts, reason=problem[0], detail=problem[1])
            try:
                image.load()
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                return ImageFacts(**facts, reason=Reason.TRUNCATED, detail=f"decoding failed: {exc}")
            try:
                to_rgb(image)
            except (UnconvertibleModeError, ValueError) as exc:
                return ImageFacts(**facts, reason=Reason.UNSUPPORTED_MODE, detail=str(exc))
    except Image.DecompressionBombError as exc:
        return ImageFacts(**facts, reason=Reason.DECOMPRESSION_BOMB, detail=str(exc))
    except UnidentifiedImageError:
        return ImageFacts(**facts, reason=Reason.NOT_AN_IMAGE, detail="no image format recognises the content")
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # The header parses as some format but is inconsistent (bad TIFF tags, bad BMP header...).
        return ImageFacts(**facts, reason=Reason.NOT_AN_IMAGE, detail=f"unreadable header: {exc}")
    return ImageFacts(**facts)


def _header_problem(image: Image.Image, params: ValidateParams) -> tuple[Reason, str] | None:
    """Checks that need only the header: run before decoding so a bomb is never decompressed.
    The rule is the inference core's, so validation and the service refuse the same images."""
    limits = ImageLimits(max_pixels=params.max_pixels, min_side=params.min_side, max_side=params.max_side)
    return header_problem(image.format, image.width, image.height, limits)
