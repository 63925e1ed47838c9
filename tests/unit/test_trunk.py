"""defectflow.features.trunk: a backbone's trained blocks run on the frozen blocks' cached output
exactly as inside the whole network, and fine-tuning on that cache (featurize.finetune.cache_frozen)
trains the same weights as running the frozen blocks in every epoch."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from defectflow.errors import DefectflowError
from defectflow.features.backbones import build_backbone
from defectflow.features.finetune import finetune
from defectflow.features.trunk import blocks, from_prefix_output, prefix_outputs
from defectflow.params import FinetuneParams

# (backbone, weights, cut): a cut inside `features` (MobileNetV2), after ResNet's stem (its ReLU
# and max pooling sit between bn1 and layer1), inside EfficientNet-Lite's `_blocks` (per-block
# drop-connect rates) and before Lite0's head convolution.
CASES = [("mobilenet_v2", "none", 10), ("resnet50", "none", 2), ("resnet50", "none", 4),
         ("efficientnet_lite0", "IMAGENET1K_V1", 15), ("efficientnet_lite0", "IMAGENET1K_V1", 18)]


@pytest.mark.parametrize(("name", "weights", "cut"), CASES)
def test_the_tail_on_cached_prefix_output_equals_the_whole_network(name, weights, cut):
    model, _ = build_backbone(name, weights, 64, seed=0)
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        whole = model(x)
        cached = prefix_outputs(model, cut, [x[:2], x[2:]])
        with from_prefix_output(model, cut):
            tail = model(cached)
        after = model(x)  # leaving the context restores the whole network
    torch.testing.assert_close(tail, whole, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(after, whole, rtol=0, atol=0)
    assert cached.shape[0] == 3 and cached.shape[1:] != x.shape[1:]


def test_only_the_blocks_after_the_cut_get_gradients():
    model, _ = build_backbone("mobilenet_v2", "none", 32, seed=0)
    cached = prefix_outputs(model, 12, [torch.randn(4, 3, 32, 32)])
    model.train()
    with from_prefix_output(model, 12):
        model(cached.clone()).sum().backward()
    trunk = blocks(model)
    assert all(p.grad is None for b in trunk[:12] for p in b.parameters())
    assert all(p.grad is not None for b in trunk[12:] for p in b.parameters())


def test_a_cut_outside_the_backbone_is_refused():
    model, _ = build_backbone("resnet50", "none", 32, seed=0)
    with pytest.raises(DefectflowError, match="choose 1 to 5"):
        prefix_outputs(model, 6, [torch.randn(1, 3, 32, 32)])


def test_fine_tuning_on_the_cache_trains_the_same_weights(noise_rows):
    # Without augmentations (the cache cannot apply photometric ones, and flips of a map are not
    # flips of the image) and with one epoch (the shuffling order is then the same), caching the
    # frozen blocks' output must change nothing but the time it takes.
    ft = FinetuneParams(epochs=1, batch_size=8, val_fraction=0.25, freeze_blocks=12, hflip=False, vflip=False,
                        rot90=False, brightness=0.0, contrast=0.0, blur_p=0.0, noise_std=0.0)
    each_epoch = finetune("mobilenet_v2", "none", 32, ft, 3, noise_rows, device="cpu", progress=False)
    cached = finetune("mobilenet_v2", "none", 32, dataclasses.replace(ft, cache_frozen=True), 3, noise_rows,
                      device="cpu", progress=False)
    assert cached.history[0]["val_auc"] == pytest.approx(each_epoch.history[0]["val_auc"], abs=1e-6)
    for k, v in each_epoch.state.items():
        torch.testing.assert_close(cached.state[k], v, rtol=1e-4, atol=1e-5)
    start, _ = build_backbone("mobilenet_v2", "none", 32, seed=3)
    assert any(not torch.equal(cached.state[k], v) for k, v in start.state_dict().items()
               if k.startswith("features.18."))  # the blocks after the cut were trained


def test_averaged_seeds_ship_one_backbone_whose_tuned_weights_are_the_seeds_mean(noise_rows, tmp_path):
    from defectflow.errors import ConfigError
    from defectflow.features.backbones import full_model
    from defectflow.features.finetune import finetuned_weights

    start = tmp_path / "start.pth"  # one starting network for every seed, as ImageNet weights are
    torch.save(full_model("mobilenet_v2", "none", 32, seed=0).state_dict(), start)
    ft = FinetuneParams(epochs=1, batch_size=8, val_fraction=0.25, freeze_blocks=12, cache_frozen=True)
    alone = [finetune("mobilenet_v2", str(start), 32, ft, s, noise_rows, device="cpu", progress=False) for s in (5, 6)]
    soup_ft = dataclasses.replace(ft, average_seeds=2)
    path = finetuned_weights(tmp_path, "mobilenet_v2", str(start), 32, soup_ft, 5, noise_rows, "cpu", False)
    soup = torch.load(path, weights_only=True)
    key = "features.18.0.weight"
    assert not torch.equal(alone[0].state[key], alone[1].state[key])
    torch.testing.assert_close(soup[key], (alone[0].state[key] + alone[1].state[key]) / 2)
    frozen = "features.3.conv.0.0.weight"  # frozen in both: kept bit for bit, not re-rounded by the mean
    assert torch.equal(soup[frozen], alone[0].state[frozen])
    with pytest.raises(ConfigError, match="average_seeds=0"):
        FinetuneParams(average_seeds=0)
    with pytest.raises(ConfigError, match="needs pretrained weights"):  # random inits differ per seed
        finetuned_weights(tmp_path, "mobilenet_v2", "none", 32, soup_ft, 5, noise_rows, "cpu", False)


def test_fine_tuning_does_not_depend_on_what_drew_random_numbers_before_it(noise_rows):
    # Lite0's per-block drop-connect draws from torch's global generator: without seeding it inside
    # `finetune`, a window's weights would change with whatever ran earlier in the process.
    ft = FinetuneParams(epochs=1, batch_size=8, val_fraction=0.0, freeze_blocks=15, cache_frozen=True)
    runs = []
    for before in (0, 123):
        torch.manual_seed(before)
        runs.append(finetune("efficientnet_lite0", "IMAGENET1K_V1", 32, ft, 3, noise_rows, device="cpu",
                             progress=False))
    key = next(k for k in runs[0].state if k.startswith("_blocks.15.") and k.endswith("weight"))
    for k, v in runs[0].state.items():
        assert torch.equal(runs[1].state[k], v), k
    start, _ = build_backbone("efficientnet_lite0", "IMAGENET1K_V1", 32, seed=3)
    assert not torch.equal(runs[0].state[key], start.state_dict()[key])  # the tail was trained
    global_state = torch.random.get_rng_state()
    finetune("efficientnet_lite0", "IMAGENET1K_V1", 32, ft, 3, noise_rows, device="cpu", progress=False)
    assert torch.equal(torch.random.get_rng_state(), global_state)  # the caller's stream is left as it was
