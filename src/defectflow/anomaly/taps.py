"""Patch vectors from an intermediate layer of the backbone, captured during the featurizer's pass.

One mid-level module (stride 16: parts of a component, not whole boards) is tapped as the normal
forward runs, so the anomaly head costs no second backbone run: in torch by a forward hook
(`PatchTap`), in ONNX Runtime / OpenVINO by a second graph output (`graph_tap`, the same
`patch_vectors` traced into the exported graph). `patch_batches` gives features and patch
vectors per batch from either kind of extractor.
Each map is smoothed with a 3×3 average (PatchCore's "locally aware" patches: a patch sees its
neighbours, so a defect a little off a grid cell still lands in one) and flattened to
(locations, channels) float16.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from defectflow.errors import ConfigError
from defectflow.features.backbones import is_composite, members
from defectflow.inference.export import ExtraOutput

if TYPE_CHECKING:
    import torch

    from defectflow.features.imaging import ImageSource

# The stride-16 block whose output is the patch map, per backbone (`anomaly.layer: auto`);
# mobilenet_v2's was chosen by bench/anomaly/choice.py (resnet50's follows PatchCore/PaDiM, unmeasured here;
# efficientnet_lite0's is the end of its 80-channel stride-16 stage, as features.10 ends mobilenet_v2's 64-channel one).
DEFAULT_LAYERS = {"mobilenet_v2": "features.10", "resnet50": "layer3", "efficientnet_lite0": "_blocks.7"}


def resolve_layer(backbone: str, layer: str) -> str:
    """`auto` → the backbone's default mid layer (a composite's: its first member's); anything else
    is taken as a module name."""
    if layer != "auto":
        return layer
    if is_composite(backbone):  # features/concat.py: the first member is `members.0`
        return f"members.0.{resolve_layer(members(backbone)[0], layer)}"
    if backbone not in DEFAULT_LAYERS:
        raise ConfigError(f"no default anomaly layer for backbone {backbone!r}; set anomaly.layer to a module name")
    return DEFAULT_LAYERS[backbone]


def patch_vectors(fmap: torch.Tensor) -> torch.Tensor:
    """N×C×H×W map → N×(H·W)×C float16 locally averaged patches (row-major locations)."""
    import torch

    x = torch.nn.functional.avg_pool2d(fmap.float(), kernel_size=3, stride=1, padding=1, count_include_pad=False)
    return x.flatten(2).transpose(1, 2).to(torch.float16)


class PatchTap:
    """Context manager: while open, every forward of `model` queues that batch's patch vectors.

    `take(n)` returns the next n images' patches in forward order (batches are launched and
    collected in order, also when one is in flight on a GPU), as a numpy (n, H·W, C) array.
    """

    def __init__(self, model: torch.nn.Module, layer: str):
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ConfigError(f"anomaly.layer {layer!r} is not a module of the backbone; e.g. "
                              f"{', '.join(list(DEFAULT_LAYERS.values()))}")
        self._module = modules[layer]
        self._queue: deque[torch.Tensor] = deque()
        self._handle = None

    def _hook(self, _module, _inputs, output: torch.Tensor) -> None:
        self._queue.append(patch_vectors(output))  # stays on the device until taken: no sync here

    def __enter__(self) -> PatchTap:
        self._handle = self._module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        self._queue.clear()

    def take(self, n: int) -> np.ndarray:
        parts, have = [], 0
        while have < n:
            if not self._queue:
                raise RuntimeError(f"patch tap: {n} images asked for, only {have} captured")
            head = self._queue[0]
            need = n - have
            if len(head) <= need:
                parts.append(self._queue.popleft())
            else:
                parts.append(head[:need])
                self._queue[0] = head[need:]
            have += len(parts[-1])
        import torch

        return torch.cat(parts).cpu().numpy()


def graph_tap(layer: str) -> ExtraOutput:
    """`layer`'s patch vectors as an ONNX graph output (`patch_vectors` runs inside the graph)."""
    return ExtraOutput(layer=layer, name=f"patches-{layer}", transform=patch_vectors)


def patch_batches(extractor, layer: str, sources: Sequence[ImageSource]
                  ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(start index, features, (n, H·W, C) float16 patch vectors) per batch, from one backbone pass.

    A torch `FeatureExtractor` is tapped with a forward hook; an `EngineExtractor` must run a
    graph exported with `graph_tap(layer)` among its extra outputs.
    """
    from defectflow.inference.pipeline import EngineExtractor

    if isinstance(extractor, EngineExtractor):
        name = graph_tap(layer).name
        if name not in extractor.backend.output_names:
            raise ConfigError(f"the {extractor.backend.name} graph has no {name!r} output: build the extractor "
                              f"with extra_outputs=[graph_tap({layer!r})]")
        at = extractor.backend.output_names.index(name)
        for start, outputs in extractor.batch_outputs(sources):
            yield start, outputs[0], np.asarray(outputs[at], dtype=np.float16)
        return
    with PatchTap(extractor.model, layer) as tap:
        for start, feats in extractor.batches(sources):
            yield start, feats, tap.take(len(feats))
