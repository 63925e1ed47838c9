"""Are the maps right? Score anomaly maps against the boxes where the synthetic demo drew its defects.

Two figures: pixel AUROC (every pixel of every scored image, positive inside a defect box) and
the share of defective images whose map maximum falls inside its box. Both are reported next
to two maps that know nothing about the image: a centre-biased map (parts sit in the middle of
the inspection window, so "look at the centre" is the baseline to beat) and a random map.
"""

from __future__ import annotations

import numpy as np


def box_mask(box: list[int] | None, src_size: int, size: int) -> np.ndarray:
    """A (size, size) boolean mask of `box` given in pixels of a src_size² image."""
    mask = np.zeros((size, size), dtype=bool)
    if box is not None:
        s = size / src_size
        x0, y0, x1, y1 = (int(np.floor(box[0] * s)), int(np.floor(box[1] * s)),
                          int(np.ceil(box[2] * s)), int(np.ceil(box[3] * s)))
        mask[max(y0, 0):min(y1, size), max(x0, 0):min(x1, size)] = True
    return mask


def map_quality(maps: np.ndarray, boxes: list[list[int] | None], src_size: int) -> dict:
    """Pixel AUROC over all images, and the share of boxed images whose map maximum is in the box."""
    from defectflow.evaluation.metrics import auc

    size = maps.shape[1]
    masks = np.stack([box_mask(b, src_size, size) for b in boxes])
    boxed = np.array([b is not None for b in boxes])
    if not boxed.any():
        raise ValueError("no image has a defect box: nothing to score the maps against")
    peak = maps.reshape(len(maps), -1).argmax(axis=1)
    hit = masks.reshape(len(masks), -1)[np.arange(len(masks)), peak]
    return {
        "pixel_auroc": round(auc(masks.ravel(), maps.ravel()), 4),
        "max_in_box_share": round(float(hit[boxed].mean()), 4),
        "n_images": int(len(maps)), "n_boxed": int(boxed.sum()),
        "box_area_share": round(float(masks[boxed].mean()), 4),
    }


def centre_maps(n: int, size: int) -> np.ndarray:
    """The same centred Gaussian bump (σ = size/4) for every image."""
    c = (np.arange(size) + 0.5) / size - 0.5
    bump = np.exp(-(c[None, :] ** 2 + c[:, None] ** 2) / (2 * 0.25**2)).astype(np.float32)
    return np.broadcast_to(bump, (n, size, size))


def random_maps(n: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size), dtype=np.float32)
