"""Per-patch anomaly values → an image's score and its per-pixel map.

The score is the largest patch value (one defect anywhere makes the image anomalous). The map
upsamples the patch grid to the image size and smooths it with a Gaussian (σ = 4 px at 224 px,
as PatchCore does), so its maximum sits where the most anomalous patch is.
"""

from __future__ import annotations

import math

import numpy as np


def image_scores(patch_scores: np.ndarray) -> np.ndarray:
    """(n, P) → (n,) anomaly score: the maximum over patches."""
    return patch_scores.max(axis=1).astype(np.float64)


def grid_side(n_patches: int) -> int:
    side = math.isqrt(n_patches)
    if side * side != n_patches:
        raise ValueError(f"{n_patches} patches do not form a square grid (square model inputs are expected)")
    return side


def anomaly_maps(patch_scores: np.ndarray, size: int) -> np.ndarray:
    """(n, P) → (n, size, size) float32 maps over the model's (square, resized) input."""
    from scipy.ndimage import gaussian_filter, zoom

    side = grid_side(patch_scores.shape[1])
    grids = patch_scores.reshape(-1, side, side).astype(np.float32)
    sigma = 4.0 * size / 224
    out = np.empty((len(grids), size, size), dtype=np.float32)
    for i, g in enumerate(grids):
        up = zoom(g, size / side, order=1, mode="nearest", grid_mode=True)[:size, :size]
        out[i] = gaussian_filter(up, sigma=sigma, mode="nearest")
    return out
