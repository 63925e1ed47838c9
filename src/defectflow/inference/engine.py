"""Which engine featurizes, and the extractor that runs it.

`featurize.engine: auto` is a short rule from the measurements in docs/performance.md:
- on CPU, ONNX Runtime when installed (fp32, it was the fastest fp32 engine on the 2-core
  AVX-512 box: ~4× torch for MobileNetV2, ~1.7× for ResNet-50, ahead of OpenVINO forced to
  fp32), else OpenVINO when installed, else torch;
- on CUDA, torch (bf16 autocast, channels_last): the GPU box has only torch, and no ONNX
  Runtime GPU build has been measured here. `engine: onnxruntime` on CUDA uses the TensorRT or
  CUDA provider when the installed onnxruntime has one.
`auto` never picks INT8; `quantization: int8` is an explicit, guarded choice (inference.quantize).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from defectflow.errors import ConfigError
from defectflow.features.backbones import BackboneSpec, backbone_spec, build_backbone
from defectflow.inference.backends import ENGINES, installed, require
from defectflow.inference.export import ExtraOutput

log = logging.getLogger(__name__)

CPU_PREFERENCE = ("onnxruntime", "openvino", "torch")
QUANTIZATIONS = ("none", "int8")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def resolve_engine(engine: str, device_type: str) -> str:
    """The concrete engine for `engine` (auto|torch|onnxruntime|openvino) on 'cpu' or 'cuda'."""
    if engine not in ENGINES:
        raise ConfigError(f"featurize.engine {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "auto":
        if device_type == "cuda":
            return "torch"
        return next(e for e in CPU_PREFERENCE if e == "torch" or installed(e))
    require(engine)
    if device_type == "cuda" and engine == "openvino":
        raise ConfigError("featurize.engine=openvino runs on the CPU only; "
                          "use device=cpu, or engine=auto/torch on CUDA")
    return engine


def _gpu_providers() -> list[str]:
    import onnxruntime as ort

    providers = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]
    if not providers:
        raise ConfigError("featurize.engine=onnxruntime on CUDA needs onnxruntime-gpu (CUDA/TensorRT providers); "
                          "this onnxruntime has only " + ", ".join(ort.get_available_providers()))
    return [*providers, "CPUExecutionProvider"]


def build_extractor(backbone: str, weights: str | None, image_size: int, seed: int, *, engine: str = "auto",
                    device: str = "auto", batch_size: int = 32, num_workers: int = 2,
                    graph_cache: Path | None = None, quantization: str = "none",
                    calibration: tuple[Sequence[str], Sequence] | None = None,
                    extra_outputs: Sequence[ExtraOutput] = (), threads: int | None = None):
    """A featurizer for the params: `FeatureExtractor` (torch) or `EngineExtractor` (ONNX graph).

    Returns (extractor, spec); `spec` is the key the features are stored under (INT8 features
    have their own). `calibration` is (sha256 keys, sources) of the INT8 calibration images.
    `num_workers` is the DataLoader processes for torch and the decode threads for the others.
    `extra_outputs` become further outputs of an ONNX engine's graph (`EngineExtractor.batch_outputs`);
    the torch extractor ignores them (a head taps its modules with a forward hook instead).
    `threads` is an ONNX engine's intra-op threads (default: every core this process may use; a
    Dask worker passes its share); torch callers set torch's thread count themselves.
    """
    from defectflow.features.extract import FeatureExtractor, select_device
    from defectflow.inference.export import cached_backbone_graph

    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"featurize.quantization {quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
    torch_device = select_device(device)
    chosen = resolve_engine(engine, torch_device.type)
    if quantization == "int8" and chosen == "torch":
        raise ConfigError("featurize.quantization=int8 runs an ONNX graph: set engine to openvino (fastest INT8 "
                          "measured here) or onnxruntime")
    if chosen == "torch":
        model, spec = build_backbone(backbone, weights, image_size, seed)
        return FeatureExtractor(model, spec, device, batch_size, num_workers), spec
    spec = backbone_spec(backbone, weights, image_size, seed)
    graph = cached_backbone_graph(spec, lambda: build_backbone(backbone, weights, image_size, seed)[0], graph_cache,
                                  extra_outputs)
    if quantization == "int8":
        graph, spec = _int8(spec, graph, calibration, graph_cache)
    return graph_extractor(chosen, graph, spec, torch_device.type, batch_size, num_workers, threads), spec


def graph_extractor(engine: str, graph: Path, spec: BackboneSpec, device_type: str = "cpu", batch_size: int = 32,
                    num_workers: int = 2, threads: int | None = None):
    """An `EngineExtractor` running `graph` with `engine` (onnxruntime | openvino) on `threads`
    intra-op threads (default: every core this process may use)."""
    from defectflow.features.extract import usable_cpus
    from defectflow.inference.backends import OnnxRuntimeBackend, graph_backend
    from defectflow.inference.pipeline import EngineExtractor

    threads = threads or usable_cpus()
    if engine == "onnxruntime" and device_type == "cuda":
        backend = OnnxRuntimeBackend(graph, threads, providers=_gpu_providers())
    else:
        backend = graph_backend(engine, graph, threads)
    log.info("featurizing with %s on %s (graph %s)", engine, device_type, graph.name)
    return EngineExtractor(backend, spec, batch_size, decode_threads=max(1, num_workers))


def extractor_for_model(model, spec: BackboneSpec, engine: str = "auto", device: str = "auto", batch_size: int = 32,
                        num_workers: int = 0, graph_cache: Path | None = None,
                        extra_outputs: Sequence[ExtraOutput] = ()):
    """The extractor for an already built headless backbone (the pyfunc's), in the engine `auto` picks.

    The graph is exported into `graph_cache` on first use; where that folder cannot be written (a
    read-only container), into a temporary folder for this process. `extra_outputs` as in
    `build_extractor` (the anomaly head's `taps.graph_tap`, for a booster that takes the score).
    """
    import tempfile

    from defectflow.features.extract import FeatureExtractor, select_device
    from defectflow.inference.export import cached_backbone_graph, default_cache_dir

    torch_device = select_device(device)
    chosen = resolve_engine(engine, torch_device.type)
    if chosen == "torch":
        return FeatureExtractor(model, spec, device, batch_size, num_workers)
    cache = Path(graph_cache or default_cache_dir())
    try:
        cache.mkdir(parents=True, exist_ok=True)
        graph = cached_backbone_graph(spec, lambda: model, cache, extra_outputs)
    except OSError:
        graph = cached_backbone_graph(spec, lambda: model, Path(tempfile.mkdtemp(prefix="defectflow-graphs-")),
                                      extra_outputs)
    return graph_extractor(chosen, graph, spec, torch_device.type, batch_size, num_workers)


def _int8(spec: BackboneSpec, graph: Path, calibration, graph_cache: Path | None) -> tuple[Path, BackboneSpec]:
    from defectflow.inference.export import default_cache_dir
    from defectflow.inference.quantize import cached_int8_graph

    if not calibration or not calibration[0]:
        raise ConfigError("featurize.quantization=int8 needs calibration images (labelled training images)")
    keys, sources = calibration
    return cached_int8_graph(spec, graph, keys, sources, graph_cache or default_cache_dir())


def calibration_set(manifest, data_dir: Path, n: int) -> tuple[list[str], list[str]]:
    """(sha256s, paths) of the `n` earliest labelled usable images: INT8 calibration data that
    images arriving later do not change (so the INT8 features' cache key stays put)."""
    ok = manifest[(manifest["status"] == "ok") & manifest["label"].isin(["pass", "fail"])]
    earliest = ok.drop_duplicates("sha256").sort_values(["captured_at", "sha256"]).head(n)
    root = Path(data_dir).resolve()
    return list(earliest["sha256"]), [str(root / p) for p in earliest["path"]]


def feature_spec(backbone: str, weights: str | None, image_size: int, seed: int, quantization: str = "none",
                 calibration_keys: Sequence[str] = ()) -> BackboneSpec:
    """The features' cache key without building anything (fp32 engines share one; INT8 has its own)."""
    from defectflow.inference.quantize import int8_spec

    spec = backbone_spec(backbone, weights, image_size, seed)
    return int8_spec(spec, calibration_keys) if quantization == "int8" else spec
