"""Explain decisions: fail probability, decision with its reason, anomaly score and map, from one
backbone pass per image, for a registered model (its logged artifacts, not the pyfunc wrapper).

`Explainer.from_artifacts(folder)` reads what `registry.register` logs: backbone.pt,
booster.txt, spec.json and, when the model was trained with the anomaly head, anomaly.npz.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defectflow.anomaly.inputs import booster_input, takes_score
from defectflow.anomaly.maps import anomaly_maps, image_scores
from defectflow.anomaly.models import PatchModel, load_model
from defectflow.anomaly.novelty import decide
from defectflow.errors import ConfigError

ANOMALY_ARTIFACT = "anomaly.npz"


@dataclass
class Explanation:
    image: str
    fail_probability: float
    decision: str
    reason: str
    anomaly_score: float | None
    novelty_threshold: float | None
    anomaly_map: np.ndarray | None  # (size, size) over the model's input
    pixels: np.ndarray              # the model's input image (size, size, 3) uint8

    def summary(self) -> dict:
        return {"image": self.image, "fail_probability": round(self.fail_probability, 6), "decision": self.decision,
                "reason": self.reason, "anomaly_score": None if self.anomaly_score is None else
                round(self.anomaly_score, 6), "novelty_threshold": self.novelty_threshold}


class Explainer:
    def __init__(self, extractor, booster, spec: dict, head: PatchModel | None, head_meta: dict | None):
        self.extractor, self.booster, self.spec = extractor, booster, spec
        self.head, self.head_meta = head, head_meta

    @classmethod
    def from_artifacts(cls, folder: Path) -> Explainer:
        import lightgbm as lgb
        import torch

        from defectflow.features.backbones import BackboneSpec, headless_from_state_dict
        from defectflow.features.extract import FeatureExtractor

        for name in ("backbone.pt", "booster.txt", "spec.json"):
            if not (folder / name).is_file():
                raise ConfigError(f"{folder} has no {name}: not a defectflow model's artifacts")
        spec = json.loads((folder / "spec.json").read_text())
        feat = spec["featurizer"]
        backbone_spec = BackboneSpec(name=feat["name"], dim=feat["dim"], weights_id=feat["weights_id"],
                                     image_size=feat["image_size"], mean=tuple(feat["mean"]), std=tuple(feat["std"]),
                                     preprocessing=feat["preprocessing"])
        state = torch.load(folder / "backbone.pt", map_location="cpu", weights_only=True)
        extractor = FeatureExtractor(headless_from_state_dict(backbone_spec, state), backbone_spec, device="auto",
                                     batch_size=16, num_workers=0)
        head, meta = load_model(folder / ANOMALY_ARTIFACT) if (folder / ANOMALY_ARTIFACT).is_file() else (None, None)
        return cls(extractor, lgb.Booster(model_file=str(folder / "booster.txt")), spec, head, meta)

    def explain(self, sources: list[str]) -> list[Explanation]:
        """One explanation per image (paths or encoded bytes), from one backbone pass over them."""
        import torch

        from defectflow.anomaly.taps import PatchTap
        from defectflow.features.imaging import load_uint8

        size = self.extractor.spec.image_size
        pixels = np.stack([load_uint8(s, size) for s in sources])
        if self.head is None:
            feats, scores, maps = self.extractor.forward_uint8(torch.from_numpy(pixels)), None, None
        else:
            with PatchTap(self.extractor.model, self.head_meta["layer"]) as tap:
                feats = self.extractor.forward_uint8(torch.from_numpy(pixels))
                patch_scores = self.head.patch_scores(tap.take(len(sources)).astype(np.float32))
            scores, maps = image_scores(patch_scores), anomaly_maps(patch_scores, size)
        X = booster_input(feats, scores if takes_score(self.head_meta) else None)
        p = self.booster.predict(X, num_iteration=self.spec["num_boost_round"])
        novelty = None if self.head_meta is None else float(self.head_meta["threshold"])
        decisions, reasons = decide(p, float(self.spec["threshold"]), scores, novelty)
        return [Explanation(str(src), float(p[i]), decisions[i], reasons[i],
                            None if scores is None else float(scores[i]), novelty,
                            None if maps is None else maps[i], pixels[i]) for i, src in enumerate(sources)]
