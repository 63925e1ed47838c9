"""The model that ships: an MLflow pyfunc from images to fail probability and decision.

It bundles the headless backbone's weights, the preprocessing spec, the LightGBM booster and
the operating threshold, so `mlflow.pyfunc.load_model(uri).predict(...)` works in a fresh
process with nothing but the logged pip requirements.
"""

from __future__ import annotations

import json

import mlflow.pyfunc
import pandas as pd

ARTIFACT_BACKBONE = "backbone"
ARTIFACT_BOOSTER = "booster"
ARTIFACT_SPEC = "spec"
ARTIFACT_ANOMALY = "anomaly"  # anomaly.npz, logged when the model was trained with the anomaly head
OUTPUT_COLUMNS = ["fail_probability", "decision"]


def as_sources(model_input) -> list:
    """Accept a DataFrame (column `image`, else the first column), a Series, a list, one path or bytes."""
    if isinstance(model_input, pd.DataFrame):
        column = "image" if "image" in model_input.columns else model_input.columns[0]
        return list(model_input[column])
    if isinstance(model_input, (str, bytes, bytearray)):
        return [model_input]
    return list(model_input)


class DefectClassifier(mlflow.pyfunc.PythonModel):
    """Images (paths or encoded bytes) → fail_probability, decision ('pass' | 'fail')."""

    def load_context(self, context) -> None:
        import lightgbm as lgb
        import torch

        from defectflow.features.backbones import BackboneSpec, headless_from_state_dict
        from defectflow.inference.engine import extractor_for_model

        with open(context.artifacts[ARTIFACT_SPEC]) as fh:
            self.spec = json.load(fh)
        feat = self.spec["featurizer"]
        backbone_spec = BackboneSpec(
            name=feat["name"], dim=feat["dim"], weights_id=feat["weights_id"], image_size=feat["image_size"],
            mean=tuple(feat["mean"]), std=tuple(feat["std"]), preprocessing=feat["preprocessing"],
        )
        state = torch.load(context.artifacts[ARTIFACT_BACKBONE], map_location="cpu", weights_only=True)
        self.backbone = headless_from_state_dict(backbone_spec, state)  # the edge exporter traces it
        # The engine `featurize.engine: auto` would pick (ONNX Runtime on CPU, torch on CUDA); fp32
        # engines agree to ~1e-5 (docs/performance.md). Decoding stays in-process (no worker start-up).
        self.extractor = extractor_for_model(self.backbone, backbone_spec, engine="auto", device="auto",
                                             batch_size=32, num_workers=1)
        self.booster = lgb.Booster(model_file=context.artifacts[ARTIFACT_BOOSTER])
        self.threshold = float(self.spec["threshold"])
        self.anomaly_head = context.artifacts.get(ARTIFACT_ANOMALY)  # its file, for the edge export; or None

    # No type hints on predict: MLflow 3 would turn them into schema enforcement that rejects
    # the mix of paths and bytes this model accepts.
    def predict(self, context, model_input, params=None):
        sources = as_sources(model_input)
        if not sources:
            return pd.DataFrame(columns=OUTPUT_COLUMNS)
        features = self.extractor.transform(sources)
        p = self.booster.predict(features, num_iteration=self.spec["num_boost_round"])
        return pd.DataFrame({"fail_probability": p, "decision": ["fail" if v >= self.threshold else "pass" for v in p]})
