"""The anomaly head on tiny maps: patch models, maps, the tap on a real backbone, the novelty
rule and its report, and map scoring against defect boxes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from defectflow.anomaly.maps import anomaly_maps, image_scores
from defectflow.anomaly.models import (
    METHODS,
    PatchCore,
    fit_patch_model,
    greedy_coreset,
    load_model,
    sample_patches,
    save_model,
)
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


@pytest.mark.parametrize(("side", "size"), [(4, 64), (14, 224), (7, 160)])
def test_maps_are_scipys_zoom_and_gaussian_in_numpy(side, size):
    from scipy.ndimage import gaussian_filter, zoom

    scores = np.random.default_rng(side).random((3, side * side)).astype(np.float32) * 10
    expected = np.stack([gaussian_filter(zoom(g, size / side, order=1, mode="nearest", grid_mode=True)[:size, :size],
                                         sigma=4.0 * size / 224, mode="nearest")
                         for g in scores.reshape(-1, side, side)])
    np.testing.assert_allclose(anomaly_maps(scores, size), expected, rtol=0, atol=1e-5)


def test_the_overlay_colours_are_matplotlibs_turbo():
    from matplotlib import colormaps

    from defectflow.anomaly.overlay import turbo

    levels = np.linspace(0, 1, 1001)
    assert np.abs(turbo(levels) - colormaps["turbo"](levels)[:, :3] * 255).max() < 8


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


# ONNX engines' patch maps vs the torch hook's on the same images: measured ≤ 1.2e-4 relative (docs/anomaly.md).
ENGINE_MAP_RTOL = 1e-3


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_onnx_engines_give_the_torch_taps_maps_from_one_pass(engine, tiny_dataset, tmp_path):
    import csv

    from defectflow.anomaly.featurize import graph_outputs
    from defectflow.anomaly.novelty import decide
    from defectflow.anomaly.store import PatchStore
    from defectflow.anomaly.taps import patch_batches
    from defectflow.features.backbones import build_backbone
    from defectflow.features.extract import FeatureExtractor
    from defectflow.inference.backends import graph_backend, installed
    from defectflow.inference.export import cached_backbone_graph
    from defectflow.inference.pipeline import EngineExtractor

    if not installed(engine):
        pytest.skip(f"{engine} is not installed")
    with open(tiny_dataset / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    paths = [str(tiny_dataset / r["image"]) for r in rows]
    good = np.array([r["label"] == "pass" for r in rows])
    model, spec = build_backbone("mobilenet_v2", "none", 64, seed=3)
    extras = graph_outputs(PatchStore(tmp_path, spec.featurizer_id, "features.10"))
    graph = cached_backbone_graph(spec, lambda: model, tmp_path / "graphs", extras)

    def one_pass(extractor):
        feats, patches = zip(*((f, p) for _, f, p in patch_batches(extractor, "features.10", paths)), strict=True)
        return np.concatenate(feats), np.concatenate(patches).astype(np.float32)

    torch_feats, torch_patches = one_pass(FeatureExtractor(model, spec, "cpu", 16, 0))
    feats, patches = one_pass(EngineExtractor(graph_backend(engine, graph, 2), spec, batch_size=16))
    rel = np.linalg.norm(feats - torch_feats, axis=1) / np.linalg.norm(torch_feats, axis=1)
    assert rel.max() < 1e-4  # the pooled features are the fp32 engines' usual ones
    head = fit_patch_model("padim", _chunks(torch_patches[good]), int(good.sum()), coreset_size=100,
                           max_candidates=1000, seed=0)
    ref_scores, scores = head.patch_scores(torch_patches), head.patch_scores(patches)
    ref_maps, maps = anomaly_maps(ref_scores, 64), anomaly_maps(scores, 64)
    np.testing.assert_allclose(maps, ref_maps, rtol=0, atol=ENGINE_MAP_RTOL * float(ref_maps.max()))
    np.testing.assert_allclose(image_scores(scores), image_scores(ref_scores), rtol=ENGINE_MAP_RTOL)
    novelty = float(np.quantile(image_scores(ref_scores)[good], 0.9))
    p = np.zeros(len(paths))
    assert decide(p, 0.5, image_scores(scores), novelty) == decide(p, 0.5, image_scores(ref_scores), novelty)


def test_an_engine_graph_without_the_tap_output_is_refused(tiny_dataset, tmp_path):
    from defectflow.anomaly.taps import patch_batches
    from defectflow.errors import ConfigError
    from defectflow.features.backbones import build_backbone
    from defectflow.inference.backends import OnnxRuntimeBackend
    from defectflow.inference.export import cached_backbone_graph
    from defectflow.inference.pipeline import EngineExtractor

    model, spec = build_backbone("mobilenet_v2", "none", 64, seed=3)
    plain = EngineExtractor(OnnxRuntimeBackend(cached_backbone_graph(spec, lambda: model, tmp_path), 2), spec)
    with pytest.raises(ConfigError, match="no 'patches-features.10' output"):
        next(patch_batches(plain, "features.10", [str(next(tiny_dataset.rglob("*.png")))]))


def test_the_featurize_stage_fills_patch_vectors_in_the_onnx_engine(make_dataset, tmp_path):
    """With the anomaly head on, `engine: onnxruntime` (what `auto` picks on CPU) is no longer
    replaced by torch: the stage's one ORT pass stores the patch vectors torch would have."""
    from defectflow.anomaly.featurize import patch_store
    from defectflow.features.backbones import backbone_spec
    from defectflow.features.stage import featurize
    from defectflow.hashing import sha256_file
    from defectflow.params import AnomalyParams, FeaturizeParams
    from defectflow.workdir import Workdir

    data = make_dataset(n=12, image_size=48)
    labels = pd.read_csv(data / "labels.csv")
    stored = {}
    for engine in ("torch", "onnxruntime"):
        workdir = Workdir(tmp_path / engine)
        workdir.root.mkdir(parents=True)
        pd.DataFrame({"path": labels["image"], "status": "ok",
                      "sha256": [sha256_file(data / p) for p in labels["image"]]}).to_parquet(workdir.manifest)
        params = FeaturizeParams(backbone="mobilenet_v2", weights="none", image_size=64, batch_size=8,
                                 num_workers=0, device="cpu", engine=engine)
        summary = featurize(data, workdir, params, seed=0, progress=False, anomaly=AnomalyParams())
        assert ("onnxruntime" in summary["device"]) == (engine == "onnxruntime")
        patches = patch_store(workdir.feature_store, backbone_spec("mobilenet_v2", "none", 64, 0), AnomalyParams())
        stored[engine] = patches.get_many(list(pd.read_parquet(workdir.features)["sha256"]))
    np.testing.assert_allclose(stored["onnxruntime"], stored["torch"], rtol=0,
                               atol=ENGINE_MAP_RTOL * float(np.abs(stored["torch"]).max()))


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
