"""Export a registered DefectClassifier to one ONNX graph; the graph agrees with the pyfunc."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from defectflow.hashing import sha256_file
from defectflow.inference.bundle import EdgeModel
from defectflow.inference.bundle_manifest import MANIFEST_NAME, ONNX_NAME, BundleError, EdgeManifest

# Fail probabilities of the ONNX graph and the pyfunc agree to this (absolute) tolerance:
# same preprocessing code, float32 conv kernels of two runtimes, float32 tree sums in ONNX.
PARITY_ATOL = 1e-5


def test_graph_matches_pyfunc_on_real_images(defect_model, edge_bundle):
    import mlflow

    mlflow.set_tracking_uri(defect_model.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(defect_model.model_uri)
    expected = pyfunc.predict(pd.DataFrame({"image": [str(p) for p in defect_model.images]}))
    got = EdgeModel(edge_bundle).predict_paths(defect_model.images)

    diff = np.abs(np.array([g.fail_probability for g in got]) - expected["fail_probability"].to_numpy())
    print(f"parity over {len(got)} images: max |dp| = {diff.max():.2e}")
    assert diff.max() <= PARITY_ATOL
    assert [g.decision for g in got] == list(expected["decision"])
    assert {"pass", "fail"} <= set(expected["decision"]), "the fixture threshold should give both decisions"


def test_manifest_describes_the_model_and_checksums_the_graph(defect_model, edge_bundle):
    manifest = EdgeManifest.read(edge_bundle)
    assert (manifest.model_name, manifest.model_version) == (defect_model.name, defect_model.version)
    assert manifest.model_uri == f"models:/{defect_model.name}/{defect_model.version}"  # alias pinned
    assert manifest.threshold == pytest.approx(defect_model.threshold)
    assert manifest.image_size == 64 and manifest.feature_dim == 1280 and manifest.backbone == "mobilenet_v2"
    assert manifest.onnx_sha256 == sha256_file(edge_bundle / ONNX_NAME)
    assert "mean_auc" in manifest.metrics and manifest.run_id
    assert manifest.parity_max_abs_diff is not None and manifest.parity_max_abs_diff <= 1e-4
    assert manifest.format_version == 1 and manifest.trees is None  # one graph: readable by pre-split runtimes
    assert sorted(p.name for p in edge_bundle.iterdir()) == [MANIFEST_NAME, ONNX_NAME]


def test_graph_is_one_model_with_documented_io(edge_bundle):
    import onnx

    model = onnx.load(str(edge_bundle / ONNX_NAME))
    assert [i.name for i in model.graph.input] == ["pixels"]
    assert [o.name for o in model.graph.output] == ["fail_probability", "is_fail"]
    domains = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    assert domains["ai.onnx"] == 15 and "ai.onnx.ml" in domains
    assert {"Conv", "TreeEnsembleClassifier", "GreaterOrEqual"} <= {n.op_type for n in model.graph.node}


def test_altered_graph_is_refused(edge_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(edge_bundle, copy)
    data = bytearray((copy / ONNX_NAME).read_bytes())
    data[-1] ^= 0xFF
    (copy / ONNX_NAME).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        EdgeModel(copy)


def test_folder_without_manifest_is_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="no manifest.json"):
        EdgeModel(tmp_path)


def test_unknown_manifest_format_is_refused(edge_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(edge_bundle, copy)
    raw = json.loads((copy / MANIFEST_NAME).read_text())
    (copy / MANIFEST_NAME).write_text(json.dumps({**raw, "format_version": 99}))
    with pytest.raises(BundleError, match="format_version 99"):
        EdgeModel(copy)


def test_edge_runtime_scores_without_torch_or_mlflow(edge_bundle, defect_model):
    """The edge contract: onnxruntime, numpy and Pillow only. Checked in a fresh interpreter."""
    code = (
        "import sys; from defectflow.inference.bundle import EdgeModel; "
        f"preds = EdgeModel({str(edge_bundle)!r}).predict_paths({[str(p) for p in defect_model.images[:3]]!r}); "
        "heavy = sorted(m for m in ('torch', 'torchvision', 'mlflow', 'lightgbm', 'pandas') if m in sys.modules); "
        "print(len(preds), heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "3 []"


def test_export_refuses_a_non_registry_uri(tmp_path):
    from defectflow.errors import ConfigError
    from defectflow.registry.export import export_bundle

    with pytest.raises(ConfigError, match="registered model"):
        export_bundle(str(tmp_path), tmp_path / "out")
    assert not (tmp_path / "out").exists()
