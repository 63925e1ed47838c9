"""Patch vectors per image, content-addressed beside the feature vectors.

Layout: <feature_store>/<featurizer_id>/patches-<layer>/<sha[:2]>/<sha256>.npy, one float16
(locations, channels) array per image, written atomically (same guarantees as
features.store.FeatureStore: a killed run keeps what it finished, a re-run adds what is missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from defectflow import atomic
from defectflow.errors import DefectflowError


class PatchStore:
    def __init__(self, feature_store_root: str | Path, featurizer_id: str, layer: str):
        self.layer = layer
        self.dir = Path(feature_store_root) / featurizer_id / f"patches-{layer}"

    def path(self, sha256: str) -> Path:
        return self.dir / sha256[:2] / f"{sha256}.npy"

    def missing(self, shas: Iterable[str]) -> list[str]:
        return [s for s in dict.fromkeys(shas) if not self.path(s).is_file()]

    def put_many(self, shas: Sequence[str], patches: np.ndarray) -> None:
        if len(shas) != len(patches):
            raise ValueError(f"{len(shas)} keys for {len(patches)} patch maps")
        for sha, p in zip(shas, patches, strict=True):
            with atomic.atomic_open(self.path(sha), "wb") as fh:
                np.save(fh, np.asarray(p, dtype=np.float16), allow_pickle=False)

    def get_many(self, shas: Sequence[str]) -> np.ndarray:
        """(n, locations, channels) float32 for `shas` (all must be present)."""
        missing = self.missing(shas)
        if missing:
            raise DefectflowError(f"{len(missing)} images have no patch vectors in {self.dir}: "
                                  "re-run `defectflow featurize` with anomaly.enabled=true")
        return np.stack([np.load(self.path(s), allow_pickle=False) for s in shas]).astype(np.float32)

    def chunks(self, shas: Sequence[str], size: int = 256) -> Iterator[np.ndarray]:
        """get_many in chunks of `size` images: memory stays bounded however many images there are."""
        for start in range(0, len(shas), size):
            yield self.get_many(shas[start:start + size])
