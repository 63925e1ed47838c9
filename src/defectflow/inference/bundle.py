"""Score images with an exported edge bundle using only onnxruntime, numpy and Pillow.

No torch and no MLflow: this module is what edge machines, the serving container and batch
scoring of a bundle run. The bundle's graph runs on the inference core's ONNX Runtime backend
(`inference.backends.OnnxRuntimeBackend`), its images go through the core's one image check
(`inference.images`). A bundle exported with the anomaly head scores every image with it too, from
the same graph run, so each decision applies the novelty rule (`anomaly.novelty`: fail when the
classifier flags the image or its anomaly score is novel), and it explains its scores
(`explain_decoded`). A split bundle (its booster takes the anomaly score: bundle_manifest) runs
model.onnx, scores the patch vectors with the bundled head and runs the trees graph on the features
plus that score (`GraphRun`).
An `EdgeModel` is safe to share between threads (onnxruntime sessions allow concurrent `run`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectflow.anomaly.bundle import BundledHead, ImageExplanation
from defectflow.anomaly.inputs import booster_input
from defectflow.anomaly.maps import image_scores
from defectflow.anomaly.novelty import decide_flagged
from defectflow.inference.backends import OnnxRuntimeBackend
from defectflow.inference.bundle_manifest import FEATURES_OUTPUT, BundleError, EdgeManifest
from defectflow.inference.images import ImageLimits, decode_resized, to_input_tensor


@dataclass(frozen=True)
class Prediction:
    fail_probability: float
    decision: str  # 'pass' | 'fail': the classifier's flag or the novelty rule (anomaly.novelty.decide)
    reason: str    # classifier (the graph's is_fail) | novel (the novelty rule alone) | normal


class GraphRun:
    """A bundle's graph run: `graph` alone, or for a split bundle (`trees` given) `graph` → the head's
    patch scores → `trees` on booster_input(features, image scores). The export's self-check runs it too."""

    def __init__(self, graph: Path, outputs: Sequence[str], *, trees: Path | None = None,
                 head: BundledHead | None = None, threads: int = 0):
        # Spinning stays on (ONNX Runtime's default): a service scores one request's small batch at a
        # time, and waking parked threads between ops would add latency.
        self._graph = OnnxRuntimeBackend(graph, threads, spinning=True)
        self.outputs = list(outputs)
        self._split: tuple[OnnxRuntimeBackend, BundledHead] | None = None
        if trees is not None:
            if head is None:
                raise BundleError(f"{trees} takes the anomaly score as a feature: it needs the anomaly head")
            self._split = (OnnxRuntimeBackend(trees, threads, spinning=True), head)

    def predict(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A normalised NCHW float32 batch → (fail probabilities float64, is_fail booleans)."""
        if self._split is None:
            prob, is_fail = self._graph.outputs(batch, self.outputs)
            return prob.astype(np.float64), is_fail.astype(bool)
        prob, is_fail, _ = self._split_run(batch, *self._split)
        return prob, is_fail

    def with_patches(self, batch: np.ndarray, head: BundledHead) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`predict`, and `head`'s (n, P) patch scores of the same run."""
        if self._split is not None:
            return self._split_run(batch, *self._split)
        prob, is_fail, patches = self._graph.outputs(batch, [*self.outputs, head.output])
        return prob.astype(np.float64), is_fail.astype(bool), head.patch_scores(patches)

    def _split_run(self, batch: np.ndarray, trees: OnnxRuntimeBackend,
                   head: BundledHead) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        features, patches = self._graph.outputs(batch, [FEATURES_OUTPUT, head.output])
        patch_scores = head.patch_scores(patches)
        prob, is_fail = trees.outputs(booster_input(features, image_scores(patch_scores)), self.outputs)
        return prob.astype(np.float64), is_fail.astype(bool), patch_scores


class EdgeModel:
    """The ONNX graph of a bundle (on the inference core's ONNX Runtime backend) plus the preprocessing
    its manifest describes."""

    def __init__(self, bundle_dir: str | os.PathLike[str], *, intra_op_threads: int = 0,
                 limits: ImageLimits | None = None):
        self.bundle_dir = Path(bundle_dir)
        self.manifest = EdgeManifest.read(self.bundle_dir)
        self.limits = limits or ImageLimits()
        graph = self.manifest.verify(self.bundle_dir)
        self.anomaly = BundledHead(self.bundle_dir, self.manifest.anomaly) if self.manifest.anomaly else None
        trees = self.bundle_dir / self.manifest.trees["file"] if self.manifest.trees else None
        # 0 threads = one per core.
        self._run = GraphRun(graph, self.manifest.outputs, trees=trees, head=self.anomaly, threads=intra_op_threads)

    @property
    def name(self) -> str:
        return self.manifest.model_name

    @property
    def version(self) -> str:
        return self.manifest.model_version

    def predict_tensor(self, batch: np.ndarray) -> tuple[list[Prediction], np.ndarray | None]:
        """Run the graph(s) on a normalised NCHW float32 batch → predictions under the novelty rule and,
        for a bundle with the anomaly head, the (n, P) patch scores of the same run (else None)."""
        if self.anomaly is None:
            prob, is_fail = self._run.predict(batch)
            patch_scores, scores, novelty = None, None, None
        else:
            prob, is_fail, patch_scores = self._run.with_patches(batch, self.anomaly)
            scores, novelty = image_scores(patch_scores), self.anomaly.novelty_threshold
        decisions, reasons = decide_flagged(is_fail, scores, novelty)
        preds = [Prediction(float(p), d, r) for p, d, r in zip(prob, decisions, reasons, strict=True)]
        return preds, patch_scores

    def decode(self, data: bytes) -> np.ndarray:
        """One encoded image → resized HWC uint8 (raises ImageRejected); cheap to call per upload."""
        return decode_resized(data, self.manifest.image_size, self.limits)

    def predict_decoded(self, resized: Sequence[np.ndarray]) -> list[Prediction]:
        """Score images already passed through `decode`, in one graph run."""
        if not resized:
            return []
        preds, _ = self.predict_tensor(to_input_tensor(resized, self.manifest.mean, self.manifest.std))
        return preds

    def explain_decoded(self, resized: Sequence[np.ndarray]) -> list[tuple[Prediction, ImageExplanation]]:
        """Score images already passed through `decode` and explain each (anomaly score, novelty,
        overlay), from one graph run; needs a bundle exported with the anomaly head (`self.anomaly`)."""
        if self.anomaly is None:
            raise BundleError(f"{self.bundle_dir} was exported without the anomaly head: it cannot explain; "
                              "train with anomaly.enabled=true and run `defectflow export` again")
        if not resized:
            return []
        preds, patch_scores = self.predict_tensor(to_input_tensor(resized, self.manifest.mean, self.manifest.std))
        assert patch_scores is not None  # the head is there (checked above): its patch scores came with the run
        why = self.anomaly.explain(np.stack(resized), [p.reason for p in preds], patch_scores)
        return list(zip(preds, why, strict=True))

    def predict_bytes(self, blobs: Sequence[bytes]) -> list[Prediction]:
        """Decode and score encoded images; raises ImageRejected for the first unusable one."""
        return self.predict_decoded([self.decode(b) for b in blobs])

    def predict_paths(self, paths: Sequence[str | os.PathLike[str]]) -> list[Prediction]:
        return self.predict_bytes([Path(p).read_bytes() for p in paths])

    def predict(self, frame: Any) -> Any:
        """The pyfunc's interface: DataFrame with an `image` column (paths or bytes) → DataFrame
        with fail_probability, decision and reason. Needs pandas (batch scoring has it; edge code can use
        predict_paths/predict_bytes instead)."""
        import pandas as pd

        blobs = [bytes(v) if isinstance(v, (bytes, bytearray)) else Path(v).read_bytes() for v in frame["image"]]
        preds = self.predict_bytes(blobs)
        return pd.DataFrame({"fail_probability": [p.fail_probability for p in preds],
                             "decision": [p.decision for p in preds], "reason": [p.reason for p in preds]})
