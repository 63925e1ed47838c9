"""The anomaly map drawn over the image people look at: a PNG operators can open.

Colours are on the novelty scale, not per image: the map is divided by the novelty threshold, so
red means "as unusual as the rarest good images" everywhere, and a normal image stays cool
instead of having its noise stretched to full colour. The map's maximum is ringed.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

MAX_RATIO = 1.5  # map/threshold shown at full colour


def overlay_png(image_rgb: np.ndarray, amap: np.ndarray, threshold: float, alpha: float = 0.45) -> bytes:
    """PNG bytes: `image_rgb` (H×W×3 uint8, same size as `amap`) with the map blended in."""
    from matplotlib import colormaps

    level = np.clip(amap / max(threshold, 1e-9) / MAX_RATIO, 0.0, 1.0)
    heat = (colormaps["turbo"](level)[..., :3] * 255).astype(np.float32)
    weight = alpha * (0.35 + 0.65 * level[..., None])  # cool areas stay mostly the photo
    blended = (image_rgb.astype(np.float32) * (1 - weight) + heat * weight).round().astype(np.uint8)
    img = Image.fromarray(blended)
    y, x = np.unravel_index(int(amap.argmax()), amap.shape)
    r = max(4, amap.shape[0] // 14)
    ImageDraw.Draw(img).ellipse([x - r, y - r, x + r, y + r], outline=(255, 255, 255), width=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
