"""The tail probe's split of EfficientNet-Lite0: prefix + tail is the product's backbone, and tuning is seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.quality import tail_probe
from defectflow.features.backbones import build_backbone
from defectflow.params import FinetuneParams

SIZE = 64  # Lite0's static padding is built per image size: a small one keeps the test fast


@pytest.fixture(autouse=True)
def small_images(monkeypatch):
    monkeypatch.setattr(tail_probe, "SIZE", SIZE)


def test_prefix_then_untouched_tail_equals_the_products_backbone():
    model, _ = build_backbone("efficientnet_lite0", "IMAGENET1K_V1", SIZE, 0)
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.inference_mode():
        expected = model(x)
        cached = tail_probe.prefix(model, x, [16, 15, 9])
        assert sorted(cached) == [9, 15, 16]
        for cut, a in cached.items():
            got = tail_probe.fresh_tail(cut, seed=0).eval().features(a)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_tuning_trains_only_the_tail_and_repeats_per_seed():
    model, _ = build_backbone("efficientnet_lite0", "IMAGENET1K_V1", SIZE, 0)
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        acts = tail_probe.prefix(model, torch.randn(24, 3, SIZE, SIZE), [15])[15].numpy()
    y = rng.integers(0, 2, 24)
    ft = FinetuneParams(epochs=2, batch_size=8)
    first = tail_probe.tune_tail(acts, y, 15, ft, seed=1)
    again = tail_probe.tune_tail(acts, y, 15, ft, seed=1)
    other = tail_probe.tune_tail(acts, y, 15, ft, seed=2)
    f1, l1 = tail_probe.embed(first, acts)
    f2, l2 = tail_probe.embed(again, acts)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(f1, f2)
    assert not np.allclose(l1, tail_probe.embed(other, acts)[1])
    assert not first.training and f1.shape == (24, 1280) and np.isfinite(l1).all()
    untouched = tail_probe.fresh_tail(15, seed=1)
    assert not torch.equal(first.conv_head.weight, untouched.conv_head.weight)  # the tail did train
