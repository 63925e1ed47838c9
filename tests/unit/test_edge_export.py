"""Export a registered DefectClassifier to one ONNX graph; the graph agrees with the pyfunc."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from defectflow.edge.manifest import BundleError, EdgeManifest, file_sha256
from defectflow.edge.runtime import EdgeModel

# Fail probabilities of the ONNX graph and the pyfunc agree to this (absolute) tolerance:
# same preprocessing code, float32 conv kernels of two runtimes, float32 tree sums in ONNX.
PARITY_ATOL = 1e-4


def test_bundle_graph_matches_pyfunc_on_real_images(defect_model, edge_bundle):
    import mlflow

    mlflow.set_tracking_uri(defect_model.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(defect_model.model_uri)
    expected = pyfunc.predict(pd.DataFrame({"image": [str(p) for p in defect_model.images]}))
    got = EdgeModel(edge_bundle).predict_paths(defect_model.images)

    onnx_p = np.array([g.fail_probability for g in got])
    diff = np.abs(onnx_p - expected["fail_probability"].to_numpy())
    print(f"parity over {len(got)} images: max |dp| = {diff.max():.2e}")
    assert diff.max() <= PARITY_ATOL
    assert [g.decision for g in got] == list(expected["decision"])
    assert {"pass", "fail"} <= set(expected["decision"]), "the fixture threshold should give both decisions"
