"""The model that ships: an MLflow pyfunc from images to fail probability and decision.

It bundles the headless backbone's weights, the preprocessing spec, the LightGBM booster and
the operating threshold, so `mlflow.pyfunc.load_model(uri).predict(...)` works in a fresh
process with nothing but the logged pip requirements. A model trained with the anomaly head
scores each image with it too, from the same backbone pass (the tapped layer's patch vectors):
its `decision` applies the novelty rule (`anomaly.novelty.decide`: fail when p ≥ threshold or the
anomaly score is above the novelty threshold; `reason` says which), and a model trained with
`anomaly.as_feature: true` also predicts on that score, its booster's last feature.
A model without the head decides as the classifier alone (reason classifier or normal).
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
OUTPUT_COLUMNS = ["fail_probability", "decision", "reason"]


def as_sources(model_input) -> list:
    """Accept a DataFrame (column `image`, else the first column), a Series, a list, one path or bytes."""
    if isinstance(model_input, pd.DataFrame):
        column = "image" if "image" in model_input.columns else model_input.columns[0]
        return list(model_input[column])
    if isinstance(model_input, (str, bytes, bytearray)):
        return [model_input]
    return list(model_input)


class DefectClassifier(mlflow.pyfunc.PythonModel):
    """Images (paths or encoded bytes) → fail_probability, decision ('pass' | 'fail') and its reason
    (classifier | novel | normal)."""

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
        # (head, its layer, the novelty threshold): the tap goes into the extractor's graph whenever the
        # head is there, since every decision applies the novelty rule.
        self.scorer = (head, str(meta["layer"]), float(meta["threshold"])) if head is not None and meta else None
        self.score_is_feature = bool(meta) and takes_score(meta)
        # The engine `featurize.engine: auto` would pick (ONNX Runtime on CPU, torch on CUDA); fp32
        # engines agree to ~1e-5 (docs/performance.md). Decoding stays in-process (no worker start-up).
        self.extractor = extractor_for_model(
            self.backbone, backbone_spec, engine="auto", device="auto", batch_size=32, num_workers=1,
            extra_outputs=[graph_tap(self.scorer[1])] if self.scorer else ())
        self.booster = lgb.Booster(model_file=context.artifacts[ARTIFACT_BOOSTER])
        self.threshold = float(self.spec["threshold"])

    def booster_features(self, sources: list) -> tuple[np.ndarray, np.ndarray | None]:
        """What the booster predicts on (the backbone features and, for a booster trained with the
        anomaly score, that score: `anomaly.inputs.booster_input`) and each image's anomaly score from
        the same backbone pass (None without the head)."""
        from defectflow.anomaly.inputs import booster_input
        from defectflow.anomaly.maps import image_scores
        from defectflow.anomaly.taps import patch_batches

        if self.scorer is None:
            return self.extractor.transform(sources), None
        head, layer, _ = self.scorer
        features, scores = [], []
        for _, feats, patches in patch_batches(self.extractor, layer, sources):
            features.append(feats)
            scores.append(image_scores(head.patch_scores(patches)))
        feats_all, scores_all = np.concatenate(features), np.concatenate(scores)
        return booster_input(feats_all, scores_all if self.score_is_feature else None), scores_all

    # No type hints on predict: MLflow 3 would turn them into schema enforcement that rejects
    # the mix of paths and bytes this model accepts.
    def predict(self, context, model_input, params=None):
        sources = as_sources(model_input)
        if not sources:
            return pd.DataFrame(columns=OUTPUT_COLUMNS)
        from defectflow.anomaly.novelty import decide

        X, scores = self.booster_features(sources)
        p = self.booster.predict(X, num_iteration=self.spec["num_boost_round"])
        decisions, reasons = decide(p, self.threshold, scores, self.scorer[2] if self.scorer else None)
        return pd.DataFrame({"fail_probability": p, "decision": decisions, "reason": reasons})
