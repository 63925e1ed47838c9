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

A booster trained with the anomaly score as its last feature (`anomaly.as_feature`) needs that
score between the backbone and the trees, and the score is the bundled head's numpy computation,
so such a model is exported split (`build_split_graphs`): model.onnx is the backbone (`features`
and the patch vectors out), trees.onnx the trees and the threshold nodes on `dim + 1` columns
(input `trees/features`); the runtime (`inference.bundle.GraphRun`) runs the head in between.

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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from defectflow.anomaly.bundle import HEAD_FILE, BundledHead, manifest_record
from defectflow.anomaly.inputs import booster_input
from defectflow.anomaly.maps import image_scores
from defectflow.anomaly.taps import graph_tap
from defectflow.atomic import write_bytes, write_json
from defectflow.errors import ConfigError, DefectflowError
from defectflow.hashing import sha256_file
from defectflow.inference.bundle import GraphRun
from defectflow.inference.bundle_manifest import (
    DECISION_OUTPUT,
    FEATURES_OUTPUT,
    FORMAT_VERSION,
    INPUT_NAME,
    MANIFEST_NAME,
    ONNX_NAME,
    PROBABILITY_OUTPUT,
    TREES_NAME,
    BundleError,
    EdgeManifest,
)
from defectflow.inference.export import ExtraOutput, with_extra_outputs

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

OPSET = 15  # highest opset the onnxmltools LightGBM converter targets
TREES_PREFIX = "trees/"
TREES_INPUT = f"{TREES_PREFIX}{FEATURES_OUTPUT}"
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
    anything is written, the bundle's graph run is compared with the torch backbone (+ head) +
    booster on `check_batch` random inputs; a disagreement above SELF_CHECK_ATOL aborts.
    """
    featurizer = spec["featurizer"]
    num_rounds = int(spec.get("num_boost_round") or booster.current_iteration())
    size, dim = int(featurizer["image_size"]), int(featurizer["dim"])
    anomaly = manifest_record(anomaly_head) if anomaly_head else None
    taps = [graph_tap(anomaly["layer"])] if anomaly else []
    if anomaly and anomaly["as_feature"]:
        graph, trees = build_split_graphs(backbone, booster, num_rounds, size, dim, threshold, taps[0])
    else:
        graph, trees = build_graph(backbone, booster, num_rounds, size, dim, threshold, taps), None
    graph_bytes = graph.SerializeToString()
    # The self-check runs the bundle runtime's own graph run on the graphs as they will be written.
    with tempfile.TemporaryDirectory(prefix="defectflow-export-") as tmp:
        graph_path, trees_path = Path(tmp) / ONNX_NAME, Path(tmp) / TREES_NAME
        write_bytes(graph_path, graph_bytes)
        extra_files = {HEAD_FILE: anomaly_head} if anomaly_head else {}
        trees_record = None
        if trees is not None:
            write_bytes(trees_path, trees.SerializeToString())
            extra_files[TREES_NAME] = trees_path
            trees_record = {"file": TREES_NAME, "sha256": sha256_file(trees_path), "input": TREES_INPUT,
                            "n_features": dim + 1}
        head = (BundledHead(anomaly_head.parent, {**anomaly, "file": anomaly_head.name})
                if anomaly and anomaly_head else None)
        run = GraphRun(graph_path, (PROBABILITY_OUTPUT, DECISION_OUTPUT), trees=trees_path if trees else None,
                       head=head)
        scorer = (head, str(head.record["layer"])) if head is not None and trees is not None else None
        max_diff = self_check(lambda x: run.predict(x)[0], source_probabilities(backbone, booster, num_rounds, scorer),
                              size, check_batch, seed)
        manifest_fields = dict(
            **identity, backbone=featurizer["name"], feature_dim=dim, image_size=size,
            mean=[float(v) for v in featurizer["mean"]], std=[float(v) for v in featurizer["std"]],
            featurizer_id=str(featurizer.get("featurizer_id", "")), threshold=float(threshold), metrics=metrics,
            parity_max_abs_diff=max_diff, opset=OPSET, exporter=exporter_versions(), anomaly=anomaly,
            trees=trees_record,
        )
        manifest = write_bundle(graph_bytes, manifest_fields, Path(out_dir), extra_files)
    log.info("exported %s v%s to %s (self-check max |Δp| = %.2e)", manifest.model_name, manifest.model_version,
             out_dir, max_diff)
    return manifest


def build_graph(backbone: Any, booster: Any, num_rounds: int, image_size: int, feature_dim: int,
                threshold: float, extra_outputs: Sequence[ExtraOutput] = ()) -> onnx.ModelProto:
    """Backbone → trees → (fail_probability, is_fail, *extra_outputs of the backbone), as one checked ONNX model."""
    from onnx import compose

    cnn = _backbone_onnx(backbone, image_size, extra_outputs)
    extras = [o for o in cnn.graph.output if o.name != FEATURES_OUTPUT]
    trees = _decision_trees(booster, num_rounds, feature_dim, threshold, cnn.ir_version)
    merged = compose.merge_models(cnn, trees, io_map=[(FEATURES_OUTPUT, TREES_INPUT)],
                                  outputs=[PROBABILITY_OUTPUT, DECISION_OUTPUT, *(o.name for o in extras)])
    # The documented order: the decision outputs first, then the backbone's extra outputs.
    by_name = {o.name: o for o in merged.graph.output}
    ordered = [by_name[n] for n in (PROBABILITY_OUTPUT, DECISION_OUTPUT, *(o.name for o in extras))]
    del merged.graph.output[:]
    merged.graph.output.extend(ordered)
    return _checked(merged, "defectflow_edge")


def build_split_graphs(backbone: Any, booster: Any, num_rounds: int, image_size: int, feature_dim: int,
                       threshold: float, tap: ExtraOutput) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """For a booster whose last feature is the anomaly score: (backbone → features and `tap`'s patch
    vectors, trees on `feature_dim + 1` columns → fail_probability, is_fail), each a checked ONNX model."""
    cnn = _backbone_onnx(backbone, image_size, [tap])
    trees = _decision_trees(booster, num_rounds, feature_dim + 1, threshold, cnn.ir_version)
    return _checked(cnn, "defectflow_backbone"), _checked(trees, "defectflow_trees")


def _decision_trees(booster: Any, num_rounds: int, n_features: int, threshold: float,
                    ir_version: int) -> onnx.ModelProto:
    """The trees and the two decision nodes: TREES_INPUT (N, n_features) → fail_probability, is_fail:
    take the `fail` column of the ensemble's probabilities, compare it with the threshold."""
    import onnx
    from onnx import compose, helper

    trees = _trees_onnx(booster, num_rounds, n_features)
    # merge_models wants one IR version and one opset per domain; the tree converter writes
    # opset 9 / IR 4 and only uses ops whose semantics are unchanged up to opset 15.
    trees.ir_version = ir_version
    for entry in trees.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = OPSET
    trees = compose.add_prefix(trees, TREES_PREFIX)
    probabilities = f"{TREES_PREFIX}probabilities"
    g = trees.graph
    g.initializer.extend([
        helper.make_tensor(f"{TREES_PREFIX}threshold", onnx.TensorProto.FLOAT, [], [threshold]),
        helper.make_tensor(f"{TREES_PREFIX}fail_column", onnx.TensorProto.INT64, [], [1]),  # classes: [pass, fail]
    ])
    g.node.extend([
        helper.make_node("Gather", [probabilities, f"{TREES_PREFIX}fail_column"], [PROBABILITY_OUTPUT], axis=1),
        helper.make_node("GreaterOrEqual", [PROBABILITY_OUTPUT, f"{TREES_PREFIX}threshold"], [DECISION_OUTPUT]),
    ])
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info(PROBABILITY_OUTPUT, onnx.TensorProto.FLOAT, ["batch"]),
                     helper.make_tensor_value_info(DECISION_OUTPUT, onnx.TensorProto.BOOL, ["batch"])])
    return trees


def _checked(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """`model` named `name`, with one opset entry per domain, after ONNX's full check."""
    import onnx
    from onnx import helper

    # A merge (and the tree converter) list the default domain twice ("" and unnamed); keep one entry per domain.
    opsets = {entry.domain or "": entry.version for entry in model.opset_import}
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in sorted(opsets.items()))
    model.graph.name = name
    onnx.checker.check_model(model, full_check=True)
    return model


def _backbone_onnx(backbone: Any, image_size: int, extra_outputs: Sequence[ExtraOutput] = ()) -> onnx.ModelProto:
    import copy

    import onnx
    import torch

    model = copy.deepcopy(backbone).to("cpu", dtype=torch.float32, memory_format=torch.contiguous_format).eval()
    model = with_extra_outputs(model, extra_outputs)
    names = [FEATURES_OUTPUT, *(o.name for o in extra_outputs)]
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
        raise ExportError(f"the booster expects {trimmed.num_feature()} features but the bundle would feed it "
                          f"{feature_dim} (the backbone's, plus the anomaly score for an anomaly.as_feature model)")
    return convert_lightgbm(trimmed, initial_types=[(FEATURES_OUTPUT, FloatTensorType([None, feature_dim]))],
                            target_opset=OPSET, zipmap=False)


def source_probabilities(backbone: Any, booster: Any, num_rounds: int,
                         scorer: tuple[BundledHead, str] | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Fail probabilities of the source model (torch backbone + LightGBM) on a normalised NCHW batch;
    with `scorer` (the head, its layer: a booster that takes the anomaly score) the head scores the
    torch hook's patch vectors of the same forward pass, as training's did."""
    import torch

    from defectflow.anomaly.taps import PatchTap

    def predict(x: np.ndarray) -> np.ndarray:
        device = next(backbone.parameters()).device
        with torch.inference_mode():
            if scorer is None:
                features, scores = backbone(torch.from_numpy(x).to(device)).float().cpu().numpy(), None
            else:
                head, layer = scorer
                with PatchTap(backbone, layer) as tap:
                    features = backbone(torch.from_numpy(x).to(device)).float().cpu().numpy()
                    scores = image_scores(head.patch_scores(tap.take(len(x))))
        return booster.predict(booster_input(features, scores), num_iteration=num_rounds)

    return predict


def self_check(exported: Callable[[np.ndarray], np.ndarray], source: Callable[[np.ndarray], np.ndarray],
               image_size: int, n: int, seed: int) -> float:
    """Max |Δ fail probability| between the exported run and the source model on `n` random inputs;
    raise above tolerance."""
    x = np.random.default_rng(seed).standard_normal((n, 3, image_size, image_size), dtype=np.float32)
    max_diff = float(np.max(np.abs(np.asarray(exported(x), dtype=np.float64) - source(x))))
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
        # The lowest format version that describes the bundle: a one-graph bundle stays version 1, so
        # edge machines still running a defectflow from before the split keep reading it.
        version = FORMAT_VERSION if manifest_fields.get("trees") else 1
        manifest = EdgeManifest(**manifest_fields, onnx_sha256=sha256_file(staging / ONNX_NAME), format_version=version,
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
