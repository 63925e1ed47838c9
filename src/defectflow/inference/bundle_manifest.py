"""The edge bundle's manifest: what model the ONNX file is, how to feed it, and its checksum.

A bundle is a folder with `model.onnx` and `manifest.json` (and `anomaly.npz` when the model has
the anomaly head: its `anomaly` record says which graph output feeds it). A model whose booster
takes the anomaly score as a feature (`anomaly.as_feature`) is split in two graphs: model.onnx is
then the backbone (features and patch vectors out) and `trees.onnx` the trees and the threshold
on the features plus the score the runtime computes between them (the manifest's `trees` record).
The manifest is written last, so a folder without one is an incomplete export; the sha256s let an
edge machine prove the graphs (and head) it runs are the ones that were exported.

Format versions: 1 is one graph; 2 adds the optional `trees` record. Version 1 bundles are read
as they are (no `trees`: one graph), so bundles exported before the split keep working.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from defectflow.hashing import sha256_file

MANIFEST_NAME = "manifest.json"
ONNX_NAME = "model.onnx"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
TREES_NAME = "trees.onnx"
FEATURES_OUTPUT = "features"  # model.onnx's pooled features in a split bundle
INPUT_NAME = "pixels"
PROBABILITY_OUTPUT = "fail_probability"
DECISION_OUTPUT = "is_fail"
PREPROCESSING = ("decode, convert to RGB, resize to image_size x image_size (Pillow bilinear, which "
                 "antialiases when downscaling; no crop), divide by 255, subtract mean and divide by std "
                 "per channel, NCHW float32")


class BundleError(ValueError):
    """The bundle folder is incomplete, of an unknown format, or its ONNX file was altered."""


@dataclass(frozen=True)
class EdgeManifest:
    model_name: str
    model_version: str
    backbone: str
    feature_dim: int
    image_size: int
    mean: list[float]
    std: list[float]
    threshold: float
    onnx_sha256: str
    created_at: str
    opset: int
    featurizer_id: str = ""
    model_uri: str = ""
    run_id: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    parity_max_abs_diff: float | None = None
    exporter: dict[str, str] = field(default_factory=dict)
    anomaly: dict[str, Any] | None = None  # defectflow.anomaly.bundle.manifest_record; None: no anomaly head
    # Split bundle (the booster takes the anomaly score): {"file", "sha256", "input", "n_features"} of
    # trees.onnx; None: model.onnx gives the outputs itself.
    trees: dict[str, Any] | None = None
    onnx_file: str = ONNX_NAME
    input_name: str = INPUT_NAME
    outputs: tuple[str, str] = (PROBABILITY_OUTPUT, DECISION_OUTPUT)
    decision_rule: str = "fail when fail_probability >= threshold"
    preprocessing: str = PREPROCESSING
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def read(cls, bundle_dir: Path) -> EdgeManifest:
        path = Path(bundle_dir) / MANIFEST_NAME
        if not path.exists():
            raise BundleError(f"{bundle_dir} has no {MANIFEST_NAME}: it is not an edge bundle, or its export "
                              "did not finish; run `defectflow export` again")
        raw = json.loads(path.read_text())
        if raw.get("format_version") not in READABLE_VERSIONS:
            raise BundleError(f"{path} has format_version {raw.get('format_version')!r}; this defectflow "
                              f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
        raw["outputs"] = tuple(raw.get("outputs", cls.outputs))
        return cls(**raw)

    def verify(self, bundle_dir: Path) -> Path:
        """Return the ONNX path after checking its sha256 (and the trees graph's and anomaly head's) against
        the manifest."""
        onnx_path = Path(bundle_dir) / self.onnx_file
        _check_file(onnx_path, self.onnx_sha256)
        for record in (self.anomaly, self.trees):
            if record is not None:
                _check_file(Path(bundle_dir) / record["file"], record["sha256"])
        if self.trees is not None and self.anomaly is None:
            raise BundleError(f"{bundle_dir}: its trees graph takes the anomaly score, but the manifest has no "
                              "anomaly head to compute it; export the model again")
        return onnx_path


def _check_file(path: Path, expected_sha256: str) -> None:
    if not path.exists():
        raise BundleError(f"{path} is missing")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise BundleError(f"{path} has sha256 {actual}, the manifest says {expected_sha256}: "
                          "the file was altered or belongs to another export")
