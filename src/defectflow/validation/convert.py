"""Turn a decoded Pillow image of any supported mode into 8-bit RGB, or refuse.

This is the one definition of "convertible": validation calls it to decide unsupported_mode,
and the featurizer and the scoring model should call it too so that what validation accepted
is exactly what the model sees. Needs only Pillow and numpy (it runs on the GPU machine too).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Formats of the input contract, as Pillow names them (MPO is how Pillow opens some JPEGs).
SUPPORTED_FORMATS = frozenset({"PNG", "JPEG", "MPO", "BMP", "TIFF"})

SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Modes whose conversion to RGB Pillow defines without loss of meaning. Alpha is dropped (the
# colour under it is kept), CMYK is converted without an ICC profile.
DIRECT_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB",
                          "HSV"})


class UnconvertibleModeError(ValueError):
    """The image's pixels have no faithful 8-bit RGB rendering."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Return an 8-bit RGB version of `image` (itself when already RGB).

    16-bit grey (I;16*, and 32-bit I holding 16-bit values, as some PNG/TIFF readers give) is
    scaled by 255/65535 rather than clipped, so a 16-bit sensor image does not turn white.
    Floating-point images (F) are refused: their display range is not defined by the file.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in DIRECT_MODES:
        return image.convert("RGB")
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise UnconvertibleModeError(f"mode {mode} holds values outside 0..65535")
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    raise UnconvertibleModeError(f"mode {mode} has no defined conversion to 8-bit RGB")
