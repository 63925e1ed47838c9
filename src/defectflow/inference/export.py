"""Export the headless backbone to ONNX once per featurizer and keep it in a content-addressed cache.

The exported graph takes what the featurizer's workers produce, a uint8 NHWC batch of resized
images, and does the rest of the model's input definition inside the graph (scale to [0, 1],
subtract the mean, divide by the std, NCHW): no float copy of the batch is ever made on the
host. Output `features` is the pooled (N, dim) float32 vector, as `FeatureExtractor` gives.

Further outputs (`ExtraOutput`) carry an intermediate module's output, optionally transformed
inside the graph (the anomaly head's patch vectors: anomaly.taps.graph_tap), so one engine
pass gives the features and what a head needs.

The cache key is the featurizer id (backbone, weights id, image size, preprocessing; the
weights id of a `.pth` file is its sha256, so fine-tuned weights get their own graph), the
opset, the torch version that traced it and the names of any extra outputs. Writes are atomic: a killed
export leaves no half-written graph, and concurrent exporters write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from defectflow import atomic
from defectflow.features.backbones import BackboneSpec

if TYPE_CHECKING:
    import torch

OPSET = 17
INPUT = "images"  # uint8 NHWC
OUTPUT = "features"
CACHE_ENV = "DEFECTFLOW_GRAPH_CACHE"


@dataclass(frozen=True)
class ExtraOutput:
    """The output of submodule `layer`, passed through `transform` in the graph, as graph output `name`.

    `name` is part of the graph's cache key: give a changed transform a new name.
    """

    layer: str
    name: str
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None


def as_extra_output(output: str | ExtraOutput) -> ExtraOutput:
    """A plain module name is that module's raw output under its own name."""
    return output if isinstance(output, ExtraOutput) else ExtraOutput(output, output)


def default_cache_dir() -> Path:
    """$DEFECTFLOW_GRAPH_CACHE, else ~/.cache/defectflow/graphs (the featurize stage uses its workdir)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "defectflow" / "graphs")


def graph_key(spec: BackboneSpec, extra_outputs: Sequence[str | ExtraOutput] = (), variant: str = "fp32") -> str:
    """Content address of a graph: everything that changes its bytes or its numbers."""
    import torch

    payload = {"featurizer_id": spec.featurizer_id, "opset": OPSET, "torch": torch.__version__,
               "extra_outputs": [as_extra_output(o).name for o in extra_outputs], "variant": variant}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    return f"{spec.name}-{variant}-{digest}"


def with_extra_outputs(model: torch.nn.Module, extra_outputs: Sequence[str | ExtraOutput]) -> torch.nn.Module:
    """`model` returning (its output, *the extra outputs), captured by forward hooks in the same call;
    just its output when there are none. This is what the exporters trace; the hooks stay on
    `model`'s modules, so pass a copy (the exporters do)."""
    import torch

    extras = [as_extra_output(o) for o in extra_outputs]
    modules = dict(model.named_modules())
    for extra in extras:
        if extra.layer not in modules:
            raise ValueError(f"extra output {extra.layer!r} is not a submodule of {type(model).__name__}")

    class Tapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self._captured: dict[str, torch.Tensor] = {}
            for extra in extras:
                modules[extra.layer].register_forward_hook(self._hook(extra))

        def _hook(self, extra: ExtraOutput) -> Callable:
            def keep(_module, _inputs, output) -> None:
                self._captured[extra.name] = output if extra.transform is None else extra.transform(output)
            return keep

        def forward(self, x: torch.Tensor):
            out = self.model(x)
            return (out, *(self._captured[e.name] for e in extras)) if extras else out

    return Tapped().eval()


class _UInt8Backbone:
    """Builds the wrapper module lazily (torch is imported only when exporting)."""

    @staticmethod
    def wrap(model: torch.nn.Module, spec: BackboneSpec, extra_outputs: Sequence[ExtraOutput]) -> torch.nn.Module:
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = with_extra_outputs(model, extra_outputs)
                self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1) * 255.0)
                self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1) * 255.0)

            def forward(self, images: torch.Tensor):
                # (x/255 - mean)/std == (x - 255·mean)/(255·std): one subtraction and one division
                return self.model((images.permute(0, 3, 1, 2).float() - self.mean) / self.std)

        return Wrapped().eval()


def export_backbone(model: torch.nn.Module, spec: BackboneSpec, target: Path,
                    extra_outputs: Sequence[str | ExtraOutput] = ()) -> Path:
    """Trace `model` (headless, eval mode) into an ONNX file at `target`, atomically.

    `extra_outputs` are further graph outputs, after `features`, for heads that need an
    intermediate feature map: a submodule name (e.g. "features.18" of MobileNetV2) gives its raw
    output under that name, an `ExtraOutput` its transformed output under its own name.
    """
    import copy

    import torch

    cpu_model = copy.deepcopy(model).to("cpu", dtype=torch.float32, memory_format=torch.contiguous_format).eval()
    extras = [as_extra_output(o) for o in extra_outputs]
    wrapped = _UInt8Backbone.wrap(cpu_model, spec, extras)
    dummy = torch.zeros(1, spec.image_size, spec.image_size, 3, dtype=torch.uint8)
    names = [OUTPUT, *(e.name for e in extras)]
    with atomic.atomic_path(target, suffix=".onnx") as tmp, warnings.catch_warnings(), torch.inference_mode():
        # The TorchScript exporter's deprecation notice: chosen on purpose (the dynamo exporter
        # needs onnxscript, which the edge/GPU machines do not have).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapped, (dummy,), str(tmp), dynamo=False, opset_version=OPSET, input_names=[INPUT],
                          output_names=names, dynamic_axes={n: {0: "batch"} for n in [INPUT, *names]})
    return target


def cached_backbone_graph(spec: BackboneSpec, build_model: Callable[[], torch.nn.Module],
                          cache_dir: Path | None = None, extra_outputs: Sequence[str | ExtraOutput] = ()) -> Path:
    """The fp32 ONNX graph for `spec`, exported on first use (`build_model()` is called only then)."""
    cache = Path(cache_dir or default_cache_dir())
    target = cache / f"{graph_key(spec, extra_outputs)}.onnx"
    if not target.is_file():
        export_backbone(build_model(), spec, target, extra_outputs)
    return target
