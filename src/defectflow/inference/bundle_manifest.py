"""The edge bundle's manifest: what model the ONNX file is, how to feed it, and its checksum.

A bundle is a folder with `model.onnx` and `manifest.json` (and `anomaly.npz` when the model has
the anomaly head: its `anomaly` record says which graph output feeds it). The manifest is written
last, so a folder without one is an incomplete export; the sha256s let an edge machine prove the
graph (and head) it runs are the ones that were exported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from defectflow.hashing import sha256_file

MANIFEST_NAME = "manifest.json"
ONNX_NAME = "model.onnx"
FORMAT_VERSION = 1
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
        if raw.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"{path} has format_version {raw.get('format_version')!r}; this defectflow "
                              f"reads version {FORMAT_VERSION}")
        raw["outputs"] = tuple(raw.get("outputs", cls.outputs))
        return cls(**raw)

    def verify(self, bundle_dir: Path) -> Path:
        """Return the ONNX path after checking its sha256 (and the anomaly head's) against the manifest."""
        onnx_path = Path(bundle_dir) / self.onnx_file
        _check_file(onnx_path, self.onnx_sha256)
        if self.anomaly is not None:
            _check_file(Path(bundle_dir) / self.anomaly["file"], self.anomaly["sha256"])
        return onnx_path


def _check_file(path: Path, expected_sha256: str) -> None:
    if not path.exists():
        raise BundleError(f"{path} is missing")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise BundleError(f"{path} has sha256 {actual}, the manifest says {expected_sha256}: "
                          "the file was altered or belongs to another export")
