"""A content-addressed feature store: one vector per (image sha256, featurizer).

Layout: <root>/<featurizer_id>/<sha[:2]>/<sha256>.npy plus <root>/<featurizer_id>/spec.json.
Each vector is written atomically, so a run killed mid-way keeps every finished vector and
never leaves a half-written one; a re-run computes only what is missing. Independent writers
(threads, processes, Dask workers) cannot conflict: the same key always holds the same value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from defectflow import atomic
from defectflow.features.backbones import BackboneSpec


class FeatureStore:
    def __init__(self, root: str | Path, spec: BackboneSpec):
        self.spec = spec
        self.dir = Path(root) / spec.featurizer_id
        spec_file = self.dir / "spec.json"
        if not spec_file.exists():
            atomic.write_json(spec_file, spec.to_dict())

    def path(self, sha256: str) -> Path:
        return self.dir / sha256[:2] / f"{sha256}.npy"

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def missing(self, shas: Iterable[str]) -> list[str]:
        """Keys without a stored vector, unique, in first-seen order."""
        return [s for s in dict.fromkeys(shas) if not self.has(s)]

    def put(self, sha256: str, vector: np.ndarray) -> None:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.spec.dim:
            raise ValueError(f"vector for {sha256} has {vector.shape[0]} values, featurizer expects {self.spec.dim}")
        with atomic.atomic_open(self.path(sha256), "wb") as fh:
            np.save(fh, vector, allow_pickle=False)

    def put_many(self, shas: Sequence[str], matrix: np.ndarray) -> None:
        for sha, row in zip(shas, matrix, strict=True):
            self.put(sha, row)

    def get_many(self, shas: Sequence[str]) -> np.ndarray:
        """Stack the vectors for `shas` (all must be present) into an (n, dim) float32 matrix."""
        out = np.empty((len(shas), self.spec.dim), dtype=np.float32)
        for i, sha in enumerate(shas):
            out[i] = np.load(self.path(sha), allow_pickle=False)
        return out

    def describe(self) -> dict:
        return json.loads((self.dir / "spec.json").read_text())
