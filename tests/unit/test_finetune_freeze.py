"""featurize.finetune.freeze_blocks: the first blocks keep their starting weights and BatchNorm statistics;
val_fraction 0: no early-stopping slice."""

from __future__ import annotations

import pytest
import torch

from defectflow.errors import DefectflowError
from defectflow.features.backbones import build_backbone
from defectflow.features.finetune import finetune
from defectflow.features.trunk import blocks, freeze_leading_blocks
from defectflow.params import FinetuneParams


def test_frozen_blocks_are_unchanged_and_the_rest_is_trained(noise_rows):
    start, _ = build_backbone("mobilenet_v2", "none", 16, seed=3)
    ft = FinetuneParams(epochs=1, batch_size=8, val_fraction=0.25, freeze_blocks=5)
    tuned = finetune("mobilenet_v2", "none", 16, ft, 3, noise_rows, device="cpu", progress=False)
    before = start.state_dict()
    frozen = [k for k in before if k.startswith(tuple(f"features.{i}." for i in range(5)))]
    trained = [k for k in before if k.startswith("features.18.") and k.endswith("weight")]
    assert frozen and trained
    for k in frozen:  # weights and running statistics alike
        torch.testing.assert_close(tuned.state[k], before[k], rtol=0, atol=0)
    assert any(not torch.equal(tuned.state[k], before[k]) for k in trained)


def test_freeze_blocks_must_leave_something_to_train():
    model, _ = build_backbone("resnet50", "none", 16, seed=0)
    assert len(blocks(model)) == 6  # conv1, bn1, layer1..layer4 (the fc head is gone)
    with pytest.raises(DefectflowError, match="choose 0 .* to 5"):
        freeze_leading_blocks(model, 6)


def test_val_fraction_zero_trains_every_epoch_on_every_row(noise_rows):
    ft = FinetuneParams(epochs=3, batch_size=8, val_fraction=0.0, patience=1, freeze_blocks=12)
    tuned = finetune("mobilenet_v2", "none", 16, ft, 3, noise_rows, device="cpu", progress=False)
    assert [h["epoch"] for h in tuned.history] == [1, 2, 3]  # patience 1 never stops it: nothing to stop on
    assert not any("val_auc" in h for h in tuned.history)
