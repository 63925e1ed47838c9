"""The edge bundle's graph and files: a trained model (backbone + booster) as one ONNX graph.

`registry.export.export_bundle` loads a registered model and hands it to `export_model`; the
bundle's runtime is `inference.bundle`, its manifest `inference.bundle_manifest`, beside the
featurizer's backbone exporter (`inference.export`).

The graph is the headless CNN backbone (torch's TorchScript-based exporter) feeding the
LightGBM trees (onnxmltools), merged into a single model, followed by two small nodes: take
the `fail` column of the tree ensemble's probabilities, and compare it with the threshold.
Input: `pixels`, a normalised NCHW float32 batch (the manifest says how to make it).
Outputs: `fail_probability` (float32, N) and `is_fail` (bool, N), and for a model trained with
the anomaly head its tapped layer's patch vectors (`patches-<layer>`, float16, N×P×C), which the
bundled head (`anomaly.npz`, defectflow.anomaly.bundle) turns into scores and maps.

Why the legacy exporter (`dynamo=False`): torch's dynamo exporter needs onnxscript and emits
opset 18+, while the LightGBM converter stops at opset 15 and one graph needs one opset per
domain. The TorchScript exporter still ships with torch 2.14 and writes opset 15 directly.
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from defectflow.anomaly.bundle import HEAD_FILE, manifest_record
from defectflow.anomaly.taps import graph_tap
from defectflow.atomic import write_bytes, write_json
from defectflow.errors import ConfigError, DefectflowError
from defectflow.hashing import sha256_file
from defectflow.inference.bundle_manifest import (
    DECISION_OUTPUT,
    INPUT_NAME,
    MANIFEST_NAME,
    ONNX_NAME,
    PROBABILITY_OUTPUT,
    BundleError,
    EdgeManifest,
)
from defectflow.inference.export import ExtraOutput, with_extra_outputs

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

OPSET = 15  # highest opset the onnxmltools LightGBM converter targets
FEATURES = "features"
TREES_PREFIX = "trees/"
# Self-check tolerance on fail probabilities between torch+LightGBM and the exported graph.
# ONNX Runtime's conv kernels and float32 tree sums differ from torch/LightGBM in the last bits.
SELF_CHECK_ATOL = 1e-4


class ExportError(DefectflowError):
    """The model could not be exported, or the exported graph disagrees with the source model."""


def export_model(backbone: Any, booster: Any, spec: dict[str, Any], threshold: float, out_dir: Path, *,
                 identity: dict[str, str], metrics: dict[str, float], anomaly_head: Path | None = None,
                 check_batch: int = 4, seed: int = 0) -> EdgeManifest:
    """Write the bundle of a trained model into `out_dir`, replacing an earlier bundle there.

    `backbone` is the headless torch module, `booster` the LightGBM booster and `spec` the pyfunc's
    spec (featurizer record, num_boost_round); `identity` names the model (model_name,
    model_version, model_uri, run_id) and `metrics` are the AUCs the service reports. Before
    anything is written, the graph is run on `check_batch` random inputs and compared with the
    torch backbone + booster; a disagreement above SELF_CHECK_ATOL aborts.
    """
    featurizer = spec["featurizer"]
    num_rounds = int(spec.get("num_boost_round") or booster.current_iteration())
    anomaly = manifest_record(anomaly_head) if anomaly_head else None
    graph = build_graph(backbone, booster, num_rounds, featurizer["image_size"], featurizer["dim"], threshold,
                        [graph_tap(anomaly["layer"])] if anomaly else [])
    max_diff = self_check(graph, backbone, booster, num_rounds, featurizer["image_size"], check_batch, seed)
    manifest_fields = dict(
        **identity, backbone=featurizer["name"], feature_dim=int(featurizer["dim"]),
        image_size=int(featurizer["image_size"]), mean=[float(v) for v in featurizer["mean"]],
        std=[float(v) for v in featurizer["std"]], featurizer_id=str(featurizer.get("featurizer_id", "")),
        threshold=float(threshold), metrics=metrics, parity_max_abs_diff=max_diff, opset=OPSET,
        exporter=exporter_versions(), anomaly=anomaly,
    )
    manifest = write_bundle(graph.SerializeToString(), manifest_fields, Path(out_dir),
                            {HEAD_FILE: anomaly_head} if anomaly_head else {})
    log.info("exported %s v%s to %s (self-check max |Δp| = %.2e)", manifest.model_name, manifest.model_version,
             out_dir, max_diff)
    return manifest


def build_graph(backbone: Any, booster: Any, num_rounds: int, image_size: int, feature_dim: int,
                threshold: float, extra_outputs: Sequence[ExtraOutput] = ()) -> onnx.ModelProto:
    """Backbone → trees → (fail_probability, is_fail, *extra_outputs of the backbone), as one checked ONNX model."""
    import onnx
    from onnx import compose, helper

    cnn = _backbone_onnx(backbone, image_size, extra_outputs)
    extras = [o for o in cnn.graph.output if o.name != FEATURES]
    trees = _trees_onnx(booster, num_rounds, feature_dim)
    # merge_models wants one IR version and one opset per domain; the tree converter writes
    # opset 9 / IR 4 and only uses ops whose semantics are unchanged up to opset 15.
    trees.ir_version = cnn.ir_version
    for entry in trees.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = OPSET
    trees = compose.add_prefix(trees, TREES_PREFIX)
    probabilities = f"{TREES_PREFIX}probabilities"
    merged = compose.merge_models(cnn, trees, io_map=[(FEATURES, f"{TREES_PREFIX}{FEATURES}")],
                                  outputs=[probabilities, *(o.name for o in extras)])
    g = merged.graph
    g.initializer.extend([
        helper.make_tensor("threshold", onnx.TensorProto.FLOAT, [], [threshold]),
        helper.make_tensor("fail_column", onnx.TensorProto.INT64, [], [1]),  # classes are [pass, fail]
    ])
    g.node.extend([
        helper.make_node("Gather", [probabilities, "fail_column"], [PROBABILITY_OUTPUT], axis=1),
        helper.make_node("GreaterOrEqual", [PROBABILITY_OUTPUT, "threshold"], [DECISION_OUTPUT]),
    ])
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info(PROBABILITY_OUTPUT, onnx.TensorProto.FLOAT, ["batch"]),
                     helper.make_tensor_value_info(DECISION_OUTPUT, onnx.TensorProto.BOOL, ["batch"]), *extras])
    # The merge lists the default domain twice ("" and unnamed); keep one entry per domain.
    opsets = {entry.domain or "": entry.version for entry in merged.opset_import}
    del merged.opset_import[:]
    merged.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in sorted(opsets.items()))
    merged.graph.name = "defectflow_edge"
    onnx.checker.check_model(merged, full_check=True)
    return merged


def _backbone_onnx(backbone: Any, image_size: int, extra_outputs: Sequence[ExtraOutput] = ()) -> onnx.ModelProto:
    import copy

    import onnx
    import torch

    model = copy.deepcopy(backbone).to("cpu", dtype=torch.float32, memory_format=torch.contiguous_format).eval()
    model = with_extra_outputs(model, extra_outputs)
    names = [FEATURES, *(o.name for o in extra_outputs)]
    dummy = torch.zeros(1, 3, image_size, image_size)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The deprecation notice of the TorchScript exporter: chosen on purpose (see module docstring).
        warnings.simplefilter("ignore", DeprecationWarning)
        # torch.onnx.export writes to a file object too; its annotation names only paths.
        torch.onnx.export(model, (dummy,), buf, dynamo=False, opset_version=OPSET,  # type: ignore[arg-type]
                          input_names=[INPUT_NAME], output_names=names,
                          dynamic_axes={n: {0: "batch"} for n in [INPUT_NAME, *names]})
    return onnx.load_from_string(buf.getvalue())


def _trees_onnx(booster: Any, num_rounds: int, feature_dim: int) -> onnx.ModelProto:
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    # Keep exactly the trees the pyfunc uses (it predicts with num_iteration=num_boost_round).
    trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=num_rounds))
    if trimmed.num_feature() != feature_dim:
        raise ExportError(f"the booster expects {trimmed.num_feature()} features but the backbone gives {feature_dim}")
    return convert_lightgbm(trimmed, initial_types=[(FEATURES, FloatTensorType([None, feature_dim]))],
                            target_opset=OPSET, zipmap=False)


def self_check(graph: onnx.ModelProto, backbone: Any, booster: Any, num_rounds: int, image_size: int,
               n: int, seed: int) -> float:
    """Max |Δ fail probability| between the graph and torch + LightGBM on random inputs; raise above tolerance."""
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(seed).standard_normal((n, 3, image_size, image_size), dtype=np.float32)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_prob, _ = session.run([PROBABILITY_OUTPUT, DECISION_OUTPUT], {INPUT_NAME: x})
    device = next(backbone.parameters()).device
    with torch.inference_mode():
        features = backbone(torch.from_numpy(x).to(device)).float().cpu().numpy()
    ref = booster.predict(features, num_iteration=num_rounds)
    max_diff = float(np.max(np.abs(onnx_prob.astype(np.float64) - ref)))
    if max_diff > SELF_CHECK_ATOL:
        raise ExportError(f"the exported graph disagrees with the source model: max |Δp| = {max_diff:.2e} "
                          f"> {SELF_CHECK_ATOL:.0e}; nothing was written")
    return max_diff


def write_bundle(onnx_bytes: bytes, manifest_fields: dict[str, Any], out_dir: Path,
                 extra_files: dict[str, Path] | None = None) -> EdgeManifest:
    """Write model.onnx (and `extra_files`: bundle name → source file) then manifest.json into a
    fresh folder and swap it in for `out_dir`."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).exists():
        raise ConfigError(f"{out_dir} exists and is not an edge bundle; choose an empty or new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write_bytes(staging / ONNX_NAME, onnx_bytes)
        extra_files = extra_files or {}
        for name, source in extra_files.items():
            write_bytes(staging / name, Path(source).read_bytes())
        manifest = EdgeManifest(**manifest_fields, onnx_sha256=sha256_file(staging / ONNX_NAME),
                                created_at=datetime.now(UTC).isoformat(timespec="seconds"))
        write_json(staging / MANIFEST_NAME, manifest.to_dict())
        EdgeManifest.read(staging).verify(staging)
        # Atomic writes create owner-only files; a bundle is read by other users (a service
        # account, the container's non-root user), so publish it world-readable.
        for path in (staging / ONNX_NAME, staging / MANIFEST_NAME, *(staging / n for n in extra_files)):
            path.chmod(0o644)
        staging.chmod(0o755)
        if out_dir.exists():
            retired = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(retired, ignore_errors=True)
            out_dir.rename(retired)
            staging.rename(out_dir)
            shutil.rmtree(retired)
        else:
            staging.rename(out_dir)
    except BundleError as exc:
        raise ExportError(f"the bundle written to {staging} does not verify: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def exporter_versions() -> dict[str, str]:
    """The versions of the libraries that wrote the graph (recorded in the manifest)."""
    import lightgbm
    import onnx
    import onnxmltools
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxmltools": onnxmltools.__version__,
            "lightgbm": lightgbm.__version__}
