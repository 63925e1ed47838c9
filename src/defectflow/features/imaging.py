"""Decode and resize images with Pillow and numpy only (no torch).

This is the single definition of the model's input: the training featurizer, the MLflow
pyfunc and the torch-free edge runtime all call it, so features cannot drift apart between
training and serving.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from defectflow.validation.convert import to_rgb  # what validation accepts is what the model sees

ImageSource = str | os.PathLike[str] | bytes



def open_image(source: ImageSource, draft_size: int | None = None) -> Image.Image:
    """Open a path or raw bytes and decode it fully (raises on truncated or non-image data).

    With `draft_size`, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps
    both sides at least `draft_size`: the decoder skips most of the work for large images
    that are about to be shrunk anyway. Other formats ignore it.
    """
    fh = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else Path(source)
    img = Image.open(fh)
    if draft_size is not None and img.format == "JPEG":
        img.draft(None, (draft_size, draft_size))
    img.load()
    return img


def load_uint8(source: ImageSource, size: int) -> np.ndarray:
    """Decode (JPEG in draft mode), convert to RGB and resize to size×size (bilinear,
    antialiased): HWC uint8."""
    img = to_rgb(open_image(source, draft_size=size))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.array(img, dtype=np.uint8)  # a writable copy: torch.from_numpy needs one


def normalize(batch_hwc: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 NHWC → float32 NCHW, scaled to [0,1] and standardised per channel."""
    x = batch_hwc.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
