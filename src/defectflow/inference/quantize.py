"""INT8 featurization graphs: ONNX Runtime post-training static quantization (QDQ, per-channel
weights), calibrated on training images. Opt-in (`featurize.quantization: int8`), never chosen by
`engine: auto`, and accepted only when the time-split AUC stays within `int8_guard.MAX_AUC_DROP`
of fp32 on the same folds (see docs/performance.md for the figures).

The calibration set is part of the features' cache key (`BackboneSpec.quantization`): other
calibration images give other scales and so other features. The featurize stage calibrates on
the *earliest* labelled images, a set that new (later) images do not change, so adding images
keeps the INT8 cache valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from defectflow import atomic
from defectflow.features.backbones import BackboneSpec
from defectflow.features.imaging import ImageSource, load_uint8
from defectflow.inference.export import INPUT, graph_key

# The ops that carry the compute; the graph's input scaling (Cast/Sub/Div) stays float.
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
CALIBRATION_BATCH = 16
SETTINGS = "qdq-s8s8-perchannel-minmax-" + "-".join(QUANTIZED_OPS)


def int8_spec(spec: BackboneSpec, calibration_keys: Sequence[str]) -> BackboneSpec:
    """The spec of features computed by the INT8 graph calibrated on `calibration_keys` (sha256s)."""
    digest = hashlib.sha256("\n".join([SETTINGS, *sorted(calibration_keys)]).encode()).hexdigest()[:12]
    return dataclasses.replace(spec, quantization=f"int8-{digest}")


class _Calibration:
    """onnxruntime's CalibrationDataReader over decoded images, batch by batch."""

    def __init__(self, sources: Sequence[ImageSource], size: int):
        self._batches: Iterator[dict] = (
            {INPUT: np.stack([load_uint8(s, size) for s in sources[i : i + CALIBRATION_BATCH]])}
            for i in range(0, len(sources), CALIBRATION_BATCH)
        )

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def quantize_graph(fp32_graph: Path, target: Path, calibration: Sequence[ImageSource], image_size: int) -> Path:
    """Write the INT8 QDQ version of `fp32_graph` to `target` (atomically)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(_Calibration, CalibrationDataReader):
        pass

    if not calibration:
        raise ValueError("INT8 quantization needs at least one calibration image")
    with atomic.atomic_path(target, suffix=".onnx") as tmp:
        quantize_static(str(fp32_graph), str(tmp), Reader(calibration, image_size), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                        op_types_to_quantize=list(QUANTIZED_OPS))
    return target


def cached_int8_graph(spec: BackboneSpec, fp32_graph: Path, calibration_keys: Sequence[str],
                      calibration: Sequence[ImageSource], cache_dir: Path) -> tuple[Path, BackboneSpec]:
    """The INT8 graph for (`spec`, calibration set), quantized on first use, and its features' spec."""
    quantized = int8_spec(spec, calibration_keys)
    target = Path(cache_dir) / f"{graph_key(quantized, variant='int8')}.onnx"
    if not target.is_file():
        quantize_graph(fp32_graph, target, calibration, spec.image_size)
    return target, quantized
