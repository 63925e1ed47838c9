"""Case (e): scoring images/s with the edge bundle (one ONNX graph under ONNX Runtime, no
torch) against the MLflow pyfunc (torch backbone + LightGBM), on the same images and model.

The model is built here, not taken from a registry: a seeded MobileNetV2 and a booster
trained on its features, saved as a pyfunc folder (`mlflow.pyfunc.save_model`) and exported
with the edge exporter's own `build_graph` + `write_bundle`.
"""

from __future__ import annotations

import json

import numpy as np

from bench.cases.context import Context
from bench.timing import Result, compare, rate_runs

BACKBONE = "mobilenet_v2"
LGBM = {"objective": "binary", "num_leaves": 7, "min_child_samples": 3, "n_estimators": 40}


def _skip(reason: str) -> list[Result]:
    return [Result("e", "edge scoring", "images/s", [float("nan")], note=f"not run: {reason}")]


def _build(ctx: Context, paths: list[str], size: int):
    """Save the pyfunc folder and the edge bundle of one freshly trained model."""
    import mlflow.pyfunc
    import torch

    from defectflow.inference.bundle_export import OPSET, build_graph, write_bundle
    from defectflow.registry.pyfunc import DefectClassifier
    from defectflow.training.booster import fit_booster, lgbm_params

    seed = int(ctx.cfg["seed"])
    extractor = ctx.extractor(BACKBONE, {"workers": 0}, image_size=size)
    features = extractor.transform(paths)
    labels = (features[:, 0] > np.median(features[:, 0])).astype(int)  # both classes, learnable
    booster = fit_booster(features, labels, LGBM, seed)
    rounds = lgbm_params(LGBM, seed)[1]
    threshold = float(np.median(booster.predict(features)))
    spec = extractor.spec
    art = ctx.scratch / "edge-artifacts"
    art.mkdir(parents=True, exist_ok=True)
    backbone = extractor.model.to("cpu", memory_format=torch.contiguous_format)
    torch.save(backbone.state_dict(), art / "backbone.pt")
    (art / "booster.txt").write_text(booster.model_to_string())
    (art / "spec.json").write_text(json.dumps({"featurizer": spec.to_dict(), "num_boost_round": rounds,
                                               "positive_class": "fail", "seed": seed, "threshold": threshold}))
    pyfunc_dir = ctx.scratch / "edge-pyfunc"
    mlflow.pyfunc.save_model(str(pyfunc_dir), python_model=DefectClassifier(), pip_requirements=["defectflow"],
                             artifacts={k: str(art / f) for k, f in (("backbone", "backbone.pt"),
                                                                     ("booster", "booster.txt"),
                                                                     ("spec", "spec.json"))})
    graph = build_graph(backbone, booster, rounds, size, spec.dim, threshold)
    bundle = ctx.scratch / "edge-bundle"
    write_bundle(graph.SerializeToString(), dict(
        model_name="bench", model_version="1", backbone=BACKBONE, feature_dim=spec.dim, image_size=size,
        mean=list(spec.mean), std=list(spec.std), threshold=threshold, opset=OPSET,
        featurizer_id=spec.featurizer_id), bundle)
    return pyfunc_dir, bundle


def run(ctx: Context) -> list[Result]:
    try:
        import mlflow.pyfunc  # noqa: F401
        import onnxruntime  # noqa: F401
        import pandas as pd

        from defectflow.inference.bundle import EdgeModel
    except ImportError as exc:
        return _skip(f"{exc.name} is not installed")

    cfg = ctx.cfg["edge"]
    size = int(cfg["image_size"])
    paths = ctx.images.paths(int(cfg["images"]), "jpeg")
    ctx.log("edge: building the pyfunc and the ONNX bundle")
    pyfunc_dir, bundle = _build(ctx, paths, size)
    pyfunc = mlflow.pyfunc.load_model(str(pyfunc_dir))
    edge = EdgeModel(bundle)
    frame = pd.DataFrame({"image": paths})

    ctx.log("edge: scoring")
    py_runs = rate_runs(lambda: len(pyfunc.predict(frame)), ctx.repeats)
    onnx_runs = rate_runs(lambda: len(edge.predict_paths(paths)), ctx.repeats)
    agree = float(np.mean(pyfunc.predict(frame)["decision"].to_numpy()
                          == np.array([p.decision for p in edge.predict_paths(paths)])))
    params = {"backbone": BACKBONE, "image_size": size, "images": len(paths)}
    py_row = Result("e", f"pyfunc (torch + LightGBM), {len(paths)} JPEGs per call", "images/s", py_runs, params=params)
    onnx_row = Result("e", f"edge bundle (ONNX Runtime), {len(paths)} JPEGs per call", "images/s", onnx_runs,
                      params=params, note=f"same decision as the pyfunc on {agree:.0%} of images")
    compare([py_row, onnx_row], py_row)
    return [py_row, onnx_row]
