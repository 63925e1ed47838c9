"""The inference engines on CPU: which engine `auto` picks, the cached ONNX export, ONNX Runtime and
OpenVINO giving torch's features and the same booster decisions on synthetic board images, the
threaded decode pipeline, and the INT8 graph having its own cache key."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from defectflow.errors import ConfigError
from defectflow.features.backbones import build_backbone
from defectflow.features.extract import FeatureExtractor
from defectflow.inference import engine as engines
from defectflow.inference.backends import OnnxRuntimeBackend, OpenVinoBackend, installed
from defectflow.inference.export import OUTPUT, cached_backbone_graph, export_backbone
from defectflow.inference.pipeline import EngineExtractor
from defectflow.inference.quantize import cached_int8_graph, int8_spec

SIZE = 64
# fp32 engines vs torch: relative L2 distance of feature vectors. Measured ~2e-6 (docs/performance.md).
FEATURE_REL_L2 = 1e-4


@pytest.fixture(scope="module")
def backbone():
    return build_backbone("mobilenet_v2", "none", SIZE, seed=3)


@pytest.fixture(scope="module")
def graph(backbone, tmp_path_factory) -> Path:
    model, spec = backbone
    return cached_backbone_graph(spec, lambda: model, tmp_path_factory.mktemp("graphs"))


@pytest.fixture(scope="module")
def board_images(tiny_dataset) -> tuple[list[str], np.ndarray]:
    """The tiny synthetic demo: paths and labels (1 = fail)."""
    with open(tiny_dataset / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    return [str(tiny_dataset / r["image"]) for r in rows], np.array([r["label"] == "fail" for r in rows], dtype=int)


def _rel_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)


def test_auto_picks_onnxruntime_on_cpu_and_torch_on_cuda():
    assert engines.resolve_engine("auto", "cpu") == ("onnxruntime" if installed("onnxruntime") else "torch")
    assert engines.resolve_engine("auto", "cuda") == "torch"
    assert engines.resolve_engine("torch", "cpu") == "torch"
    with pytest.raises(ConfigError, match="not one of"):
        engines.resolve_engine("tensorflow", "cpu")
    with pytest.raises(ConfigError, match="CPU only"):
        engines.resolve_engine("openvino", "cuda")


def test_int8_needs_a_graph_engine_and_calibration_images():
    with pytest.raises(ConfigError, match="ONNX graph"):
        engines.build_extractor("mobilenet_v2", "none", SIZE, 0, engine="torch", device="cpu", quantization="int8")
    with pytest.raises(ConfigError, match="calibration"):
        engines.build_extractor("mobilenet_v2", "none", SIZE, 0, engine="onnxruntime", device="cpu",
                                quantization="int8", calibration=([], []))
    with pytest.raises(ConfigError, match="quantization"):
        engines.build_extractor("mobilenet_v2", "none", SIZE, 0, engine="onnxruntime", quantization="fp8")


def test_fp32_featurizer_ids_are_unchanged_and_int8_gets_its_own(backbone):
    _, spec = backbone
    old_fields = {k: v for k, v in asdict(spec).items() if k != "quantization"}  # the spec before INT8 existed
    old_id = f"{spec.name}-{hashlib.sha256(json.dumps(old_fields, sort_keys=True).encode()).hexdigest()[:16]}"
    assert spec.featurizer_id == old_id  # existing feature stores stay valid
    a, b = int8_spec(spec, ["aa", "bb"]), int8_spec(spec, ["bb", "aa"])
    assert a.featurizer_id == b.featurizer_id != spec.featurizer_id  # the set, not its order
    assert int8_spec(spec, ["aa", "cc"]).featurizer_id != a.featurizer_id


def test_graph_is_exported_once_per_spec_and_new_weights_give_a_new_graph(backbone, tmp_path):
    model, spec = backbone
    calls = []

    def build():
        calls.append(1)
        return model

    first = cached_backbone_graph(spec, build, tmp_path)
    again = cached_backbone_graph(spec, build, tmp_path)
    assert first == again and len(calls) == 1
    tuned = dataclasses.replace(spec, weights_id="file-0123456789abcdef")  # a fine-tuned .pth's id
    assert cached_backbone_graph(tuned, build, tmp_path) != first and len(calls) == 2
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob(".*"))  # atomic: no leftovers


@pytest.mark.parametrize("backend_cls", [OnnxRuntimeBackend, OpenVinoBackend])
def test_graph_engines_give_torch_features_end_to_end(backend_cls, backbone, graph, board_images):
    model, spec = backbone
    paths = board_images[0][:40]
    ref = FeatureExtractor(model, spec, device="cpu", batch_size=16, num_workers=0).transform(paths)
    extractor = EngineExtractor(backend_cls(graph, threads=2), spec, batch_size=16, decode_threads=2)
    got = extractor.transform(paths)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert _rel_l2(got, ref).max() < FEATURE_REL_L2
    starts = [start for start, _ in extractor.batches(paths)]
    assert starts == [0, 16, 32]  # in order, the last batch partial


def test_booster_decisions_agree_between_engines(backbone, graph, board_images):
    """Trained on torch features, the booster takes the same decision on every image from ONNX
    Runtime's and OpenVINO's features (the issue's tolerance: identical decisions)."""
    from defectflow.training.booster import fit_booster

    model, spec = backbone
    paths, labels = board_images
    torch_feats = FeatureExtractor(model, spec, device="cpu", batch_size=32, num_workers=0).transform(paths)
    booster = fit_booster(torch_feats, labels, {"objective": "binary", "num_leaves": 7, "min_child_samples": 3,
                                                 "n_estimators": 60, "learning_rate": 0.1}, 0)
    p_ref = booster.predict(torch_feats)
    threshold = float(np.median(p_ref))
    for backend in (OnnxRuntimeBackend(graph, 2), OpenVinoBackend(graph, 2)):
        p = booster.predict(EngineExtractor(backend, spec, batch_size=32).transform(paths))
        assert np.array_equal(p >= threshold, p_ref >= threshold), backend.name
        assert np.abs(p - p_ref).max() < 1e-2


def test_extra_output_carries_an_intermediate_feature_map(backbone, tmp_path):
    import onnxruntime as ort

    model, spec = backbone
    path = export_backbone(model, spec, tmp_path / "with-map.onnx", extra_outputs=["features.14"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == [OUTPUT, "features.14"]
    feats, fmap = session.run(None, {"images": np.zeros((2, SIZE, SIZE, 3), dtype=np.uint8)})
    assert feats.shape == (2, spec.dim) and fmap.shape[0] == 2 and fmap.ndim == 4
    with pytest.raises(ValueError, match="not a submodule"):
        export_backbone(model, spec, tmp_path / "bad.onnx", extra_outputs=["no.such.layer"])


def test_int8_graph_is_cached_per_calibration_set_and_tracks_fp32(backbone, graph, board_images, tmp_path):
    model, spec = backbone
    paths = board_images[0][:16]
    keys = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]
    int8_graph, quant_spec = cached_int8_graph(spec, graph, keys, paths, tmp_path)
    assert quant_spec.quantization.startswith("int8-") and int8_graph.is_file()
    assert cached_int8_graph(spec, graph, keys, paths, tmp_path) == (int8_graph, quant_spec)
    fp32 = EngineExtractor(OnnxRuntimeBackend(graph, 2), spec).transform(paths)
    int8 = EngineExtractor(OpenVinoBackend(int8_graph, 2), quant_spec).transform(paths)
    cosine = np.sum(fp32 * int8, axis=1) / (np.linalg.norm(fp32, axis=1) * np.linalg.norm(int8, axis=1))
    assert 0 < _rel_l2(int8, fp32).max() and cosine.min() > 0.9  # quantized: close, not equal


def _cv(aucs: list[float], start: str = "2026-09-09") -> dict:
    folds = [{"fold": i + 1, "auc": a, "n_train": 240 * (i + 1), "n_test": 240, "test_start": f"{start}T{i:02d}",
              "test_end": f"{start}T{i:02d}:59"} for i, a in enumerate(aucs)]
    return {"folds": folds, "mean_auc": float(np.mean(aucs))}


def test_int8_guard_accepts_small_drops_only_on_the_same_folds():
    from defectflow.inference.int8_guard import int8_verdict

    fp32 = _cv([0.90, 0.96, 0.94, 0.94])
    assert int8_verdict(fp32, _cv([0.899, 0.957, 0.941, 0.936]))["accepted"]  # mean drop 0.00175
    refused = int8_verdict(fp32, _cv([0.89, 0.95, 0.93, 0.93]))  # mean drop 0.01
    assert not refused["accepted"] and refused["drop"] == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="different folds"):
        int8_verdict(fp32, _cv([0.90, 0.96, 0.94, 0.94], start="2026-10-01"))
