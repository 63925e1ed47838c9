"""The anomaly map drawn over the image people look at: a PNG operators can open.

Colours are on the novelty scale, not per image: the map is divided by the novelty threshold, so
red means "as unusual as the rarest good images" everywhere, and a normal image stays cool
instead of having its noise stretched to full colour. The map's maximum is ringed. Only numpy
and Pillow (the serving container draws overlays too): the colour scale is turbo, sampled at 17
points and interpolated (within 8/255 of matplotlib's).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

MAX_RATIO = 1.5  # map/threshold shown at full colour
# matplotlib's "turbo" at 0, 1/16, …, 1 (RGB, 0–255).
TURBO = np.array([[48, 18, 59], [64, 64, 162], [70, 107, 227], [66, 148, 255], [40, 188, 235], [24, 221, 194],
                  [50, 242, 152], [109, 254, 98], [164, 252, 60], [205, 236, 52], [238, 207, 58], [253, 172, 52],
                  [251, 126, 33], [235, 80, 14], [208, 47, 5], [169, 22, 1], [122, 4, 3]], dtype=np.float32)


def turbo(level: np.ndarray) -> np.ndarray:
    """Levels in [0, 1] → RGB float32 0–255 on the turbo scale."""
    at = np.linspace(0.0, 1.0, len(TURBO))
    return np.stack([np.interp(level, at, TURBO[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def overlay_png(image_rgb: np.ndarray, amap: np.ndarray, threshold: float, alpha: float = 0.45) -> bytes:
    """PNG bytes: `image_rgb` (H×W×3 uint8, same size as `amap`) with the map blended in."""
    level = np.clip(amap / max(threshold, 1e-9) / MAX_RATIO, 0.0, 1.0)
    heat = turbo(level)
    weight = alpha * (0.35 + 0.65 * level[..., None])  # cool areas stay mostly the photo
    blended = (image_rgb.astype(np.float32) * (1 - weight) + heat * weight).round().astype(np.uint8)
    img = Image.fromarray(blended)
    y, x = np.unravel_index(int(amap.argmax()), amap.shape)
    r = max(4, amap.shape[0] // 14)
    ImageDraw.Draw(img).ellipse([x - r, y - r, x + r, y + r], outline=(255, 255, 255), width=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
