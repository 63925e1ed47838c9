"""Uploads are checked before decoding; each unusable one is refused with its reason code."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from defectflow.inference.images import ImageLimits, ImageRejected, check_header, decode_resized

LIMITS = ImageLimits(max_pixels=200 * 200, min_side=16, max_side=300)


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def noisy_rgb(w: int, h: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "zero_byte"),
    (b"hello, this is text", "not_an_image"),
    (encode(noisy_rgb(40, 40), "GIF"), "unsupported_format"),
    (encode(noisy_rgb(250, 250)), "decompression_bomb"),
    (encode(noisy_rgb(301, 20)), "too_large"),
    (encode(noisy_rgb(40, 8)), "too_small"),
    (encode(Image.new("F", (40, 40)), "TIFF"), "unsupported_mode"),
], ids=["empty", "text", "gif", "pixels", "side", "small", "float-mode"])
def test_rejections_carry_the_validation_reason(data, reason):
    with pytest.raises(ImageRejected) as info:
        decode_resized(data, 32, LIMITS)
    assert info.value.reason == reason
    assert str(info.value)


def test_truncated_png_is_refused_after_the_header_reads():
    data = encode(noisy_rgb(64, 64))
    check_header(data[: len(data) // 2], LIMITS)  # header alone is fine
    with pytest.raises(ImageRejected) as info:
        decode_resized(data[: len(data) // 2], 32, LIMITS)
    assert info.value.reason == "truncated"


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16"])
def test_accepted_modes_give_the_input_shape(mode):
    img = noisy_rgb(50, 40).convert("L").convert(mode) if mode != "RGB" else noisy_rgb(50, 40)
    out = decode_resized(encode(img), 32, LIMITS)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_jpeg_is_accepted():
    assert decode_resized(encode(noisy_rgb(60, 60), "JPEG"), 24, LIMITS).shape == (24, 24, 3)
