"""The probe's hand-made EL statistics and per-image contrast normalisation."""

from __future__ import annotations

import numpy as np

from bench.quality.feature_probe import contrast_normalised, el_statistics, summarise_unseen


def _cell(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.normal(150, 10, (64, 64))
    img[40:, :20] = 60  # an inactive (dark) corner
    return np.clip(img, 0, 255).astype(np.uint8)


def test_statistics_see_a_dark_corner_whatever_the_module_brightness():
    cell = _cell(0)
    dimmer = (cell.astype(np.float32) * 0.6).astype(np.uint8)  # a darker module, same defect
    a, b = el_statistics(cell), el_statistics(dimmer)
    assert a.shape == (38,)
    dark_share = slice(9, 14)  # shares of pixels more than 2/3/4/6/8 MADs below the median
    np.testing.assert_allclose(a[dark_share], b[dark_share], atol=0.02)
    assert a[9] > 0.1  # the corner is ~20 % of the cell
    clean = _cell(1)
    clean[40:, :20] = 150
    assert el_statistics(clean)[11] < 0.01


def test_contrast_normalisation_is_per_image():
    bright, dark = _cell(0), (_cell(0) * 0.5).astype(np.uint8)
    batch = np.stack([bright, dark])[..., None].repeat(3, -1)
    out = contrast_normalised(batch)
    assert out.dtype == np.uint8
    # Each image is standardised by its own median: both land on mid-grey, not the batch's.
    np.testing.assert_allclose(np.median(out, axis=(1, 2, 3)), [127, 127], atol=1)


def test_unseen_seeds_are_pooled_into_one_protocol():
    folds = {"time": [0.6, 0.7], "unseen-0": [0.8], "unseen-1": [0.9], "random": [0.95]}
    assert summarise_unseen(folds) == {"time": [0.6, 0.7], "unseen": [0.8, 0.9], "random": [0.95]}
