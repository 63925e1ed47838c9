"""Per-patch anomaly values → an image's score and its per-pixel map.

The score is the largest patch value (one defect anywhere makes the image anomalous). The map
upsamples the patch grid to the image size (linear, cell centres on pixel centres, edges held)
and smooths it with a Gaussian (σ = 4 px at 224 px, as PatchCore does), so its maximum sits
where the most anomalous patch is. Only numpy: the maps are drawn in the serving container too
(the same numbers as scipy.ndimage's zoom(order=1, grid_mode=True) and gaussian_filter with
mode="nearest", which tests/unit/test_anomaly.py checks).
"""

from __future__ import annotations

import math

import numpy as np

TRUNCATE = 4.0  # the Gaussian kernel reaches this many σ each side


def image_scores(patch_scores: np.ndarray) -> np.ndarray:
    """(n, P) → (n,) anomaly score: the maximum over patches."""
    return patch_scores.max(axis=1).astype(np.float64)


def grid_side(n_patches: int) -> int:
    side = math.isqrt(n_patches)
    if side * side != n_patches:
        raise ValueError(f"{n_patches} patches do not form a square grid (square model inputs are expected)")
    return side


def _upsample(grids: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Linear resampling of `axis` to `size` samples, cell centres on pixel centres, edges held."""
    side = grids.shape[axis]
    at = np.clip((np.arange(size) + 0.5) * side / size - 0.5, 0, side - 1)
    lo = np.floor(at).astype(np.int64)
    hi = np.minimum(lo + 1, side - 1)
    shape = [1] * grids.ndim
    shape[axis] = size
    w = (at - lo).reshape(shape)
    return np.take(grids, lo, axis=axis) * (1 - w) + np.take(grids, hi, axis=axis) * w


def _smooth(maps: np.ndarray, axis: int, sigma: float) -> np.ndarray:
    """Gaussian correlation along `axis`, the edge value repeated beyond the border."""
    radius = int(TRUNCATE * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    pad = [(0, 0)] * maps.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(maps, pad, mode="edge")
    n = maps.shape[axis]
    return sum(t * np.take(padded, np.arange(k, k + n), axis=axis) for k, t in enumerate(taps))


def anomaly_maps(patch_scores: np.ndarray, size: int) -> np.ndarray:
    """(n, P) → (n, size, size) float32 maps over the model's (square, resized) input."""
    side = grid_side(patch_scores.shape[1])
    grids = patch_scores.reshape(-1, side, side).astype(np.float64)
    up = _upsample(_upsample(grids, 1, size), 2, size)
    sigma = 4.0 * size / 224
    return _smooth(_smooth(up, 1, sigma), 2, sigma).astype(np.float32)
