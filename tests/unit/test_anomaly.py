"""The anomaly head on tiny maps: patch models, maps, the tap on a real backbone, the novelty
rule and its report, and map scoring against defect boxes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from defectflow.anomaly.maps import anomaly_maps, image_scores
from defectflow.anomaly.models import (METHODS, PatchCore, fit_patch_model, greedy_coreset, load_model,
                                       sample_patches, save_model)
from defectflow.anomaly.novelty import decide, novelty_report
from defectflow.anomaly.quality import box_mask, centre_maps, map_quality, random_maps

SIDE, C = 4, 8  # a 4×4 grid of 8-channel patches


def _good(n: int, seed: int = 0) -> np.ndarray:
    base = np.random.default_rng(99).normal(size=(1, SIDE * SIDE, C))  # each location has its own normal look
    rng = np.random.default_rng(seed)
    return (base + 0.3 * rng.normal(size=(n, SIDE * SIDE, C))).astype(np.float32)


def _chunks(x: np.ndarray, size: int = 16):
    return lambda: (x[i:i + size] for i in range(0, len(x), size))


@pytest.mark.parametrize("method", METHODS)
def test_an_odd_patch_scores_high_and_is_where_the_map_peaks(method):
    train, test = _good(120), _good(10, seed=1)
    odd = test.copy()
    odd[:, 5] += 3.0  # location (1, 1) of every test image looks like nothing seen
    model = fit_patch_model(method, _chunks(train), len(train), coreset_size=200, max_candidates=1000, seed=0)
    normal_scores, odd_scores = image_scores(model.patch_scores(test)), image_scores(model.patch_scores(odd))
    assert odd_scores.min() > normal_scores.max()
    maps = anomaly_maps(model.patch_scores(odd), size=32)
    peak_y, peak_x = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert (peak_y // 8, peak_x // 8) == (1, 1)  # 32 px / 4 cells = 8 px per cell


def test_patchcore_memory_is_capped_and_the_coreset_covers_the_candidates():
    train = _good(200)
    model = fit_patch_model("patchcore", _chunks(train), len(train), coreset_size=50, max_candidates=800, seed=0)
    assert model.bank.shape == (50, C)
    rng = np.random.default_rng(0)
    candidates = sample_patches(_chunks(train), len(train), 800, rng)
    assert len(candidates) == 800  # 4 patches from each of the 200 images
    chosen = greedy_coreset(candidates, 50, np.random.default_rng(1))
    random = rng.choice(len(candidates), 50, replace=False)

    def worst_gap(idx):
        return PatchCore(candidates[idx]).patch_scores(candidates[None]).max()

    assert worst_gap(chosen) < worst_gap(random)


@pytest.mark.parametrize("method", METHODS)
def test_a_saved_head_scores_the_same(method, tmp_path):
    train, test = _good(60), _good(5, seed=3)
    model = fit_patch_model(method, _chunks(train), len(train), coreset_size=100, max_candidates=500, seed=0)
    save_model(model, tmp_path / "anomaly.npz", {"threshold": 1.5})
    loaded, meta = load_model(tmp_path / "anomaly.npz")
    assert meta == {"threshold": 1.5, "method": method}
    np.testing.assert_allclose(loaded.patch_scores(test), model.patch_scores(test), rtol=1e-6)


def test_the_tap_captures_the_mid_layer_of_the_same_pass(tmp_path):
    import torch
    from PIL import Image

    from defectflow.anomaly.taps import PatchTap, patch_vectors
    from defectflow.features.backbones import build_backbone
    from defectflow.features.extract import FeatureExtractor

    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    model, spec = build_backbone("mobilenet_v2", "none", 64, seed=0)
    extractor = FeatureExtractor(model, spec, device="cpu", batch_size=2, num_workers=0)
    with PatchTap(extractor.model, "features.10") as tap:
        got = [(feats, tap.take(len(feats))) for _, feats in extractor.batches(paths)]
    patches = np.concatenate([p for _, p in got])
    assert patches.shape == (5, 16, 64) and patches.dtype == np.float16  # stride 16 at 64 px: 4×4 grid
    # the same images through the backbone's first 11 blocks directly
    batch = torch.stack([torch.from_numpy(np.array(Image.open(p))) for p in paths]).permute(0, 3, 1, 2)
    x = (batch.float() / 255 - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        direct = patch_vectors(extractor.model.features[:11](x)).numpy()
    np.testing.assert_allclose(patches.astype(np.float32), direct.astype(np.float32), atol=2e-2)


def test_unknown_layer_is_a_config_error():
    import torch

    from defectflow.anomaly.taps import PatchTap
    from defectflow.errors import ConfigError

    with pytest.raises(ConfigError, match="not a module"):
        PatchTap(torch.nn.Linear(2, 2), "features.10")


def test_novelty_sends_what_the_classifier_passes_to_review():
    p = np.array([0.9, 0.1, 0.1, 0.1])
    score = np.array([0.0, 5.0, 1.0, 9.0])
    decisions, reasons = decide(p, threshold=0.5, anomaly_score=score, novelty_threshold=2.0)
    assert decisions == ["fail", "fail", "pass", "fail"]
    assert reasons == ["classifier", "novel", "normal", "novel"]
    assert decide(p, 0.5, None, None)[1] == ["classifier", "normal", "normal", "normal"]


def test_novelty_report_counts_catches_and_review_cost():
    oof = pd.DataFrame({
        "fold": [1, 1, 1, 1, 2, 2, 2, 2],
        "y": [1, 1, 0, 0, 1, 1, 0, 0],
        "p_fail": [0.9, 0.1, 0.2, 0.1, 0.1, 0.1, 0.8, 0.1],
        "novel": [False, True, True, False, True, False, False, False],
        "novelty_threshold": [3.0] * 4 + [4.0] * 4,
    })
    report = novelty_report(oof, threshold=0.5)
    overall = report["overall"]
    assert overall["fails_caught_classifier"] == 1
    assert overall["fails_caught_novelty"] == 2 and overall["fails_caught_only_by_novelty"] == 2
    assert overall["fails_missed"] == 1
    assert overall["review_share_classifier"] == 0.25 and overall["review_share_with_novelty"] == 0.625
    assert overall["review_share_cost"] == 0.375
    assert report["quantile_thresholds"] == {1: 3.0, 2: 4.0}
    assert [f["n_fail"] for f in report["folds"]] == [2, 2]
    assert novelty_report(oof.drop(columns=["novel"]), 0.5) is None


def test_map_quality_tells_right_maps_from_baselines():
    boxes = [[5, 5, 15, 15], [30, 5, 40, 15], None, [2, 28, 12, 38]]
    right = np.stack([box_mask(b, 40, 40).astype(np.float32) for b in boxes]) + 0.01 * random_maps(4, 40, 1)
    good = map_quality(right, boxes, src_size=40)
    assert good["pixel_auroc"] > 0.99 and good["max_in_box_share"] == 1.0 and good["n_boxed"] == 3
    centre = map_quality(np.array(centre_maps(4, 40)), boxes, src_size=40)
    assert centre["max_in_box_share"] == 0.0  # no box covers the centre
    assert 0.3 < map_quality(random_maps(4, 40, 0), boxes, 40)["pixel_auroc"] < 0.7
    # a box given in pixels of a larger image lands on the same cells of the smaller map
    assert box_mask([20, 20, 40, 40], 80, 40).sum() == 100
