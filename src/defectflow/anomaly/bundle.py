"""The anomaly head inside an edge bundle: explanations from the graph run that scores the images.

The export writes the head training fitted (`anomaly.npz`) beside model.onnx and gives the graph
the tapped layer's patch vectors as one more output (`taps.graph_tap`); the manifest's `anomaly`
record (`manifest_record`) names both. `BundledHead.patch_scores` turns that output into patch
anomaly values (which a split bundle's trees also need: their booster takes the image's score as
a feature), `BundledHead.explain` those into each image's anomaly score, novelty verdict and
overlay PNG. Only numpy and Pillow, like the rest of the edge runtime: this runs in the serving container.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectflow.anomaly.inputs import takes_score
from defectflow.anomaly.maps import anomaly_maps, image_scores
from defectflow.anomaly.models import load_model
from defectflow.anomaly.overlay import overlay_png
from defectflow.anomaly.taps import graph_tap
from defectflow.hashing import sha256_file

HEAD_FILE = "anomaly.npz"


@dataclass(frozen=True)
class ImageExplanation:
    anomaly_score: float
    novelty_threshold: float
    novel: bool            # above the novelty threshold
    review_reason: str     # the prediction's reason: classifier | novel (the novelty rule alone) | normal
    overlay_png: bytes     # the model's input with the anomaly map blended in (anomaly.overlay)


def manifest_record(head_path: Path) -> dict[str, Any]:
    """What an edge manifest says about the head at `head_path`: its file, checksum, graph output, threshold,
    and whether the booster takes its score as a feature (`as_feature`: the bundle is split, see bundle_manifest)."""
    _, meta = load_model(head_path)
    return {"file": HEAD_FILE, "sha256": sha256_file(head_path), "output": graph_tap(meta["layer"]).name,
            "layer": meta["layer"], "method": meta["method"], "novelty_threshold": float(meta["threshold"]),
            "as_feature": takes_score(meta)}


class BundledHead:
    """The head of a bundle (its manifest `record`), scoring the patch vectors the graph outputs."""

    def __init__(self, bundle_dir: Path, record: dict[str, Any]):
        self.record = record
        self.output: str = record["output"]
        self.novelty_threshold = float(record["novelty_threshold"])
        self.model, _ = load_model(Path(bundle_dir) / record["file"])

    def patch_scores(self, patches: np.ndarray) -> np.ndarray:
        """The graph's (n, P, C) patch vectors → (n, P) patch anomaly values."""
        return self.model.patch_scores(np.asarray(patches, dtype=np.float32))

    def explain(self, pixels: np.ndarray, reasons: list[str], patch_scores: np.ndarray) -> list[ImageExplanation]:
        """Per image: `pixels` (n, S, S, 3) uint8 model inputs, the reasons of their decisions (which the
        novelty rule already applied to these patch scores: EdgeModel.predict_tensor) and their (n, P)
        `patch_scores` → score, novelty verdict and overlay."""
        scores = image_scores(patch_scores)
        maps = anomaly_maps(patch_scores, pixels.shape[1])
        return [ImageExplanation(float(scores[i]), self.novelty_threshold, bool(scores[i] > self.novelty_threshold),
                                 reasons[i], overlay_png(pixels[i], maps[i], self.novelty_threshold))
                for i in range(len(scores))]
