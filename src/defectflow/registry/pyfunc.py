"""The model that ships: an MLflow pyfunc from images to fail probability and decision.

It bundles the headless backbone's weights, the preprocessing spec, the LightGBM booster and
the operating threshold, so `mlflow.pyfunc.load_model(uri).predict(...)` works in a fresh
process with nothing but the logged pip requirements. A model trained with
`anomaly.as_feature: true` also scores each image with its anomaly head, from the same backbone
pass (the tapped layer's patch vectors), because its booster takes that score as its last feature.

`decision` is the classifier's (p ≥ threshold), like the edge graph's `is_fail`: the novelty
rule's `novel` reason comes from `defectflow explain` and the service's `?explain=true`.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
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

        from defectflow.anomaly.inputs import takes_score
        from defectflow.anomaly.models import load_model
        from defectflow.anomaly.taps import graph_tap
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
        self.anomaly_head = context.artifacts.get(ARTIFACT_ANOMALY)  # its file, for the edge export; or None
        head, meta = load_model(Path(self.anomaly_head)) if self.anomaly_head else (None, None)
        # Only a booster that takes the score pays for the head here (and gets the tap in its graph).
        self.scorer = (head, str(meta["layer"])) if head is not None and meta and takes_score(meta) else None
        # The engine `featurize.engine: auto` would pick (ONNX Runtime on CPU, torch on CUDA); fp32
        # engines agree to ~1e-5 (docs/performance.md). Decoding stays in-process (no worker start-up).
        self.extractor = extractor_for_model(
            self.backbone, backbone_spec, engine="auto", device="auto", batch_size=32, num_workers=1,
            extra_outputs=[graph_tap(self.scorer[1])] if self.scorer else ())
        self.booster = lgb.Booster(model_file=context.artifacts[ARTIFACT_BOOSTER])
        self.threshold = float(self.spec["threshold"])

    def booster_features(self, sources: list) -> np.ndarray:
        """What the booster predicts on: the backbone features and, for a booster trained with the
        anomaly score, each image's score from the same backbone pass (`anomaly.inputs.booster_input`)."""
        from defectflow.anomaly.inputs import booster_input
        from defectflow.anomaly.maps import image_scores
        from defectflow.anomaly.taps import patch_batches

        if self.scorer is None:
            return self.extractor.transform(sources)
        head, layer = self.scorer
        features, scores = [], []
        for _, feats, patches in patch_batches(self.extractor, layer, sources):
            features.append(feats)
            scores.append(image_scores(head.patch_scores(patches)))
        return booster_input(np.concatenate(features), np.concatenate(scores))

    # No type hints on predict: MLflow 3 would turn them into schema enforcement that rejects
    # the mix of paths and bytes this model accepts.
    def predict(self, context, model_input, params=None):
        sources = as_sources(model_input)
        if not sources:
            return pd.DataFrame(columns=OUTPUT_COLUMNS)
        p = self.booster.predict(self.booster_features(sources), num_iteration=self.spec["num_boost_round"])
        return pd.DataFrame({"fail_probability": p, "decision": ["fail" if v >= self.threshold else "pass" for v in p]})
