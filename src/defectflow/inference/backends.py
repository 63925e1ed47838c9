"""Model engines behind one call: a batch in, the graph's first output (the features) out.

For featurization the batch is uint8 NHWC and the output (N, dim) float32 features:
`TorchBackend` wraps the `FeatureExtractor` (CPU or CUDA, autocast, channels_last);
`OnnxRuntimeBackend` and `OpenVinoBackend` run the exported backbone graph (`inference.export`).
`outputs(batch)` gives every graph output in one run: the features, then the extra outputs
(e.g. the anomaly head's patch vectors), named in `output_names`. The edge bundle's runtime
(`inference.bundle`) runs its whole graph (normalised NCHW float32 in, fail probability,
decision and patch vectors out) on `OnnxRuntimeBackend` too, asking for outputs by name.
All are safe to call from one thread at a time, `OnnxRuntimeBackend` from several at once (an
ONNX Runtime session allows concurrent runs); ONNX Runtime and OpenVINO release the GIL while
they compute, so decode threads keep working meanwhile.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from defectflow.errors import ConfigError

ENGINES = ("auto", "torch", "onnxruntime", "openvino")
_MODULE = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}
_INSTALL = {"onnxruntime": "pip install onnxruntime", "openvino": "pip install openvino==2026.4.1"}


class Backend(Protocol):
    name: str
    output_names: list[str]

    def __call__(self, batch_nhwc: np.ndarray) -> np.ndarray: ...

    def outputs(self, batch_nhwc: np.ndarray) -> list[np.ndarray]: ...


def installed(engine: str) -> bool:
    """Whether the engine's runtime can be imported here (without importing it)."""
    return importlib.util.find_spec(_MODULE[engine]) is not None


def require(engine: str) -> None:
    if engine not in ENGINES or engine == "auto":
        raise ConfigError(f"featurize.engine {engine!r} is not one of {', '.join(ENGINES)}")
    if not installed(engine):
        raise ConfigError(f"featurize.engine={engine} but {_MODULE[engine]} is not installed; "
                          f"`{_INSTALL.get(engine, 'pip install ' + engine)}` or use engine=auto")


class TorchBackend:
    """The torch path as a backend (used where a caller wants one interface for every engine)."""

    name = "torch"
    output_names = ["features"]

    def __init__(self, extractor: Any):
        self.extractor = extractor

    def __call__(self, batch_nhwc: np.ndarray) -> np.ndarray:
        import torch

        return self.extractor.forward_uint8(torch.from_numpy(np.ascontiguousarray(batch_nhwc)))

    def outputs(self, batch_nhwc: np.ndarray) -> list[np.ndarray]:
        return [self(batch_nhwc)]


class OnnxRuntimeBackend:
    """ONNX Runtime on the CPU provider (or CUDA/TensorRT when that build is installed and asked for).

    `threads` intra-op threads (0: ONNX Runtime's default, one per core). `spinning=False` (the
    featurizer's choice) lets idle intra-op threads sleep instead of burning the cores the decode
    threads need between two batches; the bundle runtime keeps ONNX Runtime's default, spinning.
    """

    name = "onnxruntime"

    def __init__(self, graph: Path, threads: int, providers: list[str] | None = None, *, spinning: bool = False):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(graph), options, providers=providers or ["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch_nhwc: np.ndarray) -> np.ndarray:
        return self.session.run(self.output_names[:1], {self._input: np.ascontiguousarray(batch_nhwc)})[0]

    def outputs(self, batch_nhwc: np.ndarray, names: Sequence[str] | None = None) -> list[np.ndarray]:
        """The graph outputs `names` (default: all, in `output_names` order) from one run."""
        return self.session.run(list(names or self.output_names), {self._input: np.ascontiguousarray(batch_nhwc)})


class OpenVinoBackend:
    """OpenVINO on the CPU plugin. fp32 is forced (`INFERENCE_PRECISION_HINT=f32`): left alone,
    OpenVINO runs bf16 on CPUs with AVX512-BF16/AMX, which moves features by ~13 % (see
    docs/performance.md). An INT8 (QDQ) graph runs its quantized ops in int8 either way."""

    name = "openvino"

    def __init__(self, graph: Path, threads: int):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = core.compile_model(str(graph), "CPU", config)
        self._request = self.compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]

    def __call__(self, batch_nhwc: np.ndarray) -> np.ndarray:
        return self.outputs(batch_nhwc)[0]

    def outputs(self, batch_nhwc: np.ndarray) -> list[np.ndarray]:
        out = self._request.infer({0: np.ascontiguousarray(batch_nhwc)})
        # Copies: the request's buffers are reused by the next infer call.
        return [np.array(out[o], dtype=np.float32 if i == 0 else None) for i, o in enumerate(self.compiled.outputs)]


def graph_backend(engine: str, graph: Path, threads: int) -> Backend:
    """An ONNX-graph engine for `graph` (onnxruntime | openvino)."""
    require(engine)
    if engine == "onnxruntime":
        return OnnxRuntimeBackend(graph, threads)
    if engine == "openvino":
        return OpenVinoBackend(graph, threads)
    raise ConfigError(f"engine {engine!r} does not run ONNX graphs; use onnxruntime or openvino")
