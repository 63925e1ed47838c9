"""featurize.backbone=efficientnet_lite0+mobilenet_v2: each member's own features, under its own input
normalisation, concatenated; one ONNX graph (with the first member's anomaly tap) giving torch's
features; the saved state rebuilds it; clear errors for what a composite cannot do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from defectflow.anomaly.taps import graph_tap, patch_batches, resolve_layer
from defectflow.errors import ConfigError
from defectflow.features.backbones import LITE_MEAN, backbone_spec, build_backbone, headless_from_state_dict
from defectflow.features.extract import FeatureExtractor
from defectflow.features.tuned import check_mode
from defectflow.inference.engine import build_extractor
from defectflow.params import FeaturizeParams

SIZE = 96
PAIR = "efficientnet_lite0+mobilenet_v2"


@pytest.fixture(scope="module")
def pair():
    return build_backbone(PAIR, "IMAGENET1K_V1", SIZE, seed=0)


@pytest.fixture(scope="module")
def images(tiny_dataset):
    return sorted(str(p) for p in Path(tiny_dataset).rglob("*.png"))[:8]


def test_features_are_each_members_own_features_side_by_side(pair, images):
    model, spec = pair
    assert (spec.dim, spec.mean) == (1280 + 1280, LITE_MEAN)  # input normalised for the first member
    assert spec.weights_id.count("+") == 1 and "efficientnet-lite0" in spec.weights_id
    together = FeatureExtractor(model, spec, "cpu", 4, 0).transform(images)
    alone = [FeatureExtractor(*build_backbone(name, "IMAGENET1K_V1", SIZE, 0), "cpu", 4, 0).transform(images)
             for name in PAIR.split("+")]
    np.testing.assert_allclose(together, np.hstack(alone), rtol=1e-4, atol=1e-4)
    assert np.linalg.norm(alone[1], axis=1).min() > 0


def test_member_order_and_weights_change_the_featurizer_id():
    ids = {backbone_spec(name, weights, SIZE, 0).featurizer_id
           for name in (PAIR, "mobilenet_v2+efficientnet_lite0") for weights in ("IMAGENET1K_V1", "none")}
    assert len(ids) == 4


def test_one_onnx_graph_gives_torch_features_and_the_first_members_anomaly_tap(pair, images, tmp_path):
    model, spec = pair
    layer = resolve_layer(PAIR, "auto")
    assert layer == "members.0." + resolve_layer("efficientnet_lite0", "auto")
    onnx, onnx_spec = build_extractor(PAIR, "IMAGENET1K_V1", SIZE, 0, engine="onnxruntime", num_workers=0,
                                      graph_cache=tmp_path, extra_outputs=[graph_tap(layer)])
    assert onnx_spec.featurizer_id == spec.featurizer_id
    assert len(list(tmp_path.glob("*.onnx"))) == 1
    (_, torch_features, torch_patches), = patch_batches(FeatureExtractor(model, spec, "cpu", 8, 0), layer, images)
    (_, onnx_features, onnx_patches), = patch_batches(onnx, layer, images)
    rel = np.linalg.norm(onnx_features - torch_features, axis=1) / np.linalg.norm(torch_features, axis=1)
    assert rel.max() < 1e-4
    assert onnx_patches.shape == torch_patches.shape == (8, (SIZE // 16) ** 2, 80)


def test_a_saved_state_rebuilds_the_same_composite_and_a_file_of_it_loads(pair, tmp_path):
    model, spec = pair
    rebuilt = headless_from_state_dict(spec, model.state_dict())
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(x), model(x))
    torch.save(model.state_dict(), tmp_path / "pair.pth")
    loaded, loaded_spec = build_backbone(PAIR, str(tmp_path / "pair.pth"), SIZE, 0)
    assert loaded_spec.weights_id.startswith("file-")
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))


def test_random_init_is_seeded_per_composite():
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        a, b, c = (build_backbone(PAIR, "none", 64, seed)[0](x) for seed in (1, 1, 2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_what_a_composite_cannot_be_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="twice"):
        backbone_spec("mobilenet_v2+mobilenet_v2", "IMAGENET1K_V1", SIZE, 0)
    with pytest.raises(ConfigError, match="unknown backbone 'vgg16'"):
        backbone_spec("mobilenet_v2+vgg16", "IMAGENET1K_V1", SIZE, 0)
    with pytest.raises(ConfigError, match="one of efficientnet_lite0, mobilenet_v2, or mode=frozen"):
        check_mode(FeaturizeParams(backbone=PAIR, mode="finetune"))
    check_mode(FeaturizeParams(backbone=PAIR, mode="frozen"))
