"""The one image check: untrusted encoded images → the model's input array, or a refusal with a reason.

Only numpy and Pillow: this runs on edge machines and in the serving container. The decode,
resize and normalisation are `defectflow.features.imaging` (the one definition the featurizer
and the pyfunc use too). `header_problem` is the rule on a header (format, size limits) that the
validate stage (validation/scan.py) applies to files and `check_header` to uploads, so both
refuse the same images with the same reason codes and operators see one vocabulary.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from defectflow.features.imaging import load_uint8, normalize
from defectflow.validation.convert import DIRECT_MODES, SIXTEEN_BIT_MODES, SUPPORTED_FORMATS
from defectflow.validation.reasons import Reason

CONVERTIBLE_MODES = DIRECT_MODES | SIXTEEN_BIT_MODES | {"I"}


class ImageRejected(ValueError):
    """An input that cannot be scored; `reason` is a stable code, the message says why."""

    def __init__(self, reason: Reason, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ImageLimits:
    """Bounds checked from the header, before a single pixel is decoded."""

    max_pixels: int = 40_000_000
    min_side: int = 16
    max_side: int = 12_000


def header_problem(fmt: str | None, width: int, height: int, limits: ImageLimits) -> tuple[Reason, str] | None:
    """The first reason a header's format or size makes an image unusable, or None (no pixel decoded)."""
    if fmt not in SUPPORTED_FORMATS:
        return (Reason.UNSUPPORTED_FORMAT,
                f"{fmt} images are not accepted; use one of {', '.join(sorted(SUPPORTED_FORMATS))}")
    if width * height > limits.max_pixels:
        return (Reason.DECOMPRESSION_BOMB,
                f"the image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}")
    if max(width, height) > limits.max_side:
        return Reason.TOO_LARGE, f"the image is {width}x{height}; no side may exceed {limits.max_side}"
    if min(width, height) < limits.min_side:
        return Reason.TOO_SMALL, f"the image is {width}x{height}; each side must be at least {limits.min_side}"
    return None


def check_header(data: bytes, limits: ImageLimits) -> None:
    """Raise ImageRejected unless `data` starts like an acceptable image (no pixel decode)."""
    if not data:
        raise ImageRejected(Reason.ZERO_BYTE, "the upload is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height), mode = img.format, img.size, img.mode
    except Image.DecompressionBombError as exc:
        raise ImageRejected(Reason.DECOMPRESSION_BOMB, f"rejected as a decompression bomb: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ImageRejected(Reason.NOT_AN_IMAGE, "the upload is not a readable image "
                            f"(accepted formats: {', '.join(sorted(SUPPORTED_FORMATS))})") from None
    problem = header_problem(fmt, width, height, limits)
    if problem is not None:
        raise ImageRejected(*problem)
    if mode not in CONVERTIBLE_MODES:
        raise ImageRejected(Reason.UNSUPPORTED_MODE,
                            f"pixel mode {mode!r} has no faithful 8-bit RGB rendering; send RGB or greyscale")


def decode_resized(data: bytes, image_size: int, limits: ImageLimits) -> np.ndarray:
    """Check, decode fully and resize one encoded image → HWC uint8, or raise ImageRejected."""
    check_header(data, limits)
    try:
        return load_uint8(data, image_size)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(Reason.TRUNCATED, "the header reads but the pixel data does not decode "
                            f"({exc}); the file is probably truncated or corrupt") from None


def to_input_tensor(resized: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Stack resized HWC uint8 images into the graph's normalised NCHW float32 batch."""
    return normalize(np.stack(resized), tuple(mean), tuple(std))
