"""ImageNet CNN backbones with their classification head removed.

The backbone maps a normalised NCHW float batch to one pooled feature vector per image.
`BackboneSpec` records everything that determines those features; its `featurizer_id` is part
of every cache key, so changing the backbone, the weights or the preprocessing recomputes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from defectflow.errors import ConfigError
from defectflow.features.weights import resolve_weights

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Bump when the decode/resize/normalise recipe changes: cached features become stale.
# v2: JPEGs are decoded in draft mode (DCT-domain downscale to ≥ image_size before the resize).
PREPROCESSING_VERSION = "rgb-jpegdraft-resize-bilinear-antialias-imagenet-norm-v2"

# name → (attribute holding the classification head, feature dimension)
BACKBONES: dict[str, tuple[str, int]] = {
    "mobilenet_v2": ("classifier", 1280),
    "resnet50": ("fc", 2048),
}


@dataclass(frozen=True)
class BackboneSpec:
    """What a feature vector depends on, besides the image bytes."""

    name: str
    dim: int
    weights_id: str
    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    preprocessing: str = PREPROCESSING_VERSION
    # "none" (fp32 on any engine: features agree to ~1e-5, so they share one cache key) or
    # "int8-<calibration id>" (quantized features differ materially: their own key).
    quantization: str = "none"

    @property
    def featurizer_id(self) -> str:
        fields = asdict(self)
        if fields["quantization"] == "none":  # keeps every fp32 id (and feature cache) as it was
            del fields["quantization"]
        payload = json.dumps(fields, sort_keys=True).encode()
        return f"{self.name}-{hashlib.sha256(payload).hexdigest()[:16]}"

    def to_dict(self) -> dict:
        return {**asdict(self), "featurizer_id": self.featurizer_id}


def backbone_spec(name: str, weights: str | None, image_size: int, seed: int) -> BackboneSpec:
    """The spec alone (cheap: no model is built), e.g. to look features up in the store."""
    _check_name(name)
    resolved = resolve_weights(name, weights, seed)
    return BackboneSpec(name=name, dim=BACKBONES[name][1], weights_id=resolved.weights_id, image_size=image_size)


def build_backbone(name: str, weights: str | None, image_size: int, seed: int) -> tuple[torch.nn.Module, BackboneSpec]:
    """Build `name` with its head replaced by Identity, weights loaded, in eval mode."""
    import torch
    import torchvision.models as tvm

    _check_name(name)
    resolved = resolve_weights(name, weights, seed)
    head_attr, dim = BACKBONES[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # random init (weights=none) must be reproducible too
        model = tvm.get_model(name, weights=None)
    if resolved.path is not None:
        state = torch.load(resolved.path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    setattr(model, head_attr, torch.nn.Identity())
    model.eval()
    spec = BackboneSpec(name=name, dim=dim, weights_id=resolved.weights_id, image_size=image_size)
    return model, spec


def headless_from_state_dict(spec: BackboneSpec, state_dict: dict) -> torch.nn.Module:
    """Rebuild a headless backbone from a saved state dict (what the packaged model ships)."""
    import torch
    import torchvision.models as tvm

    model = tvm.get_model(spec.name, weights=None)
    setattr(model, BACKBONES[spec.name][0], torch.nn.Identity())
    model.load_state_dict(state_dict)
    return model.eval()


def _check_name(name: str) -> None:
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(BACKBONES))}")
