"""A content-addressed feature store: one vector per (image sha256, featurizer).

Layout: <root>/<featurizer_id>/<sha[:2]>/<sha256>.npy plus <root>/<featurizer_id>/spec.json.
Each vector is written atomically, so a run killed mid-way keeps every finished vector and
never leaves a half-written one; a re-run computes only what is missing. Independent writers
(threads, processes, Dask workers) cannot conflict: the same key always holds the same value.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from defectflow import atomic
from defectflow.features.backbones import BackboneSpec

log = logging.getLogger(__name__)

# Concurrent vector writes per put_many: enough to batch fsyncs, bounded for small machines.
WRITE_THREADS = 16
# A live writer keeps its temp file for the milliseconds one small .npy takes; an older one was
# left by a writer that was killed between create and rename.
ORPHAN_TEMP_AGE_S = 5.0


def graph_cache(root: str | Path) -> Path:
    """Where the exported backbone graphs (inference.export) of the store at `root` are cached, beside
    its featurizers' folders: the local featurize path and the Dask workers share it."""
    return Path(root) / "graphs"


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
        try:
            with atomic.atomic_open(self.path(sha256), "wb") as fh:
                np.save(fh, vector, allow_pickle=False)
        except FileNotFoundError:
            if not self.has(sha256):
                raise
            # Another writer stored this key first and swept our temp file (remove_orphans): the
            # same key always holds the same vector, so the stored one is ours.

    def put_many(self, shas: Sequence[str], matrix: np.ndarray) -> None:
        """Store one vector per key. Each write is fsync'ed before its rename (durable and
        atomic); running them on threads lets the filesystem commit the fsyncs together,
        about 5× faster than one after another (docs/performance.md)."""
        if len(shas) != len(matrix):
            raise ValueError(f"{len(shas)} keys for {len(matrix)} vectors")
        if len(shas) <= 1:
            for sha, row in zip(shas, matrix, strict=True):
                self.put(sha, row)
            return
        with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(shas)), thread_name_prefix="feature-store") as pool:
            for _ in pool.map(self.put, shas, matrix):  # re-raises the first failed write
                pass

    def fill(self, keys: Sequence[str], sources: Sequence, extractor, on_batch=None) -> list[str]:
        """Compute and store the vectors of `keys` not stored yet; `sources[i]` is the image of
        `keys[i]` and `extractor` a FeatureExtractor (anything with `.batches(sources)`).

        Work is proportional to the missing keys only; each batch is stored as it completes,
        so an interrupted fill keeps what it finished. Returns the keys that were computed.
        """
        source_of = dict(zip(keys, sources, strict=True))
        todo = self.missing(keys)
        for start, feats in extractor.batches([source_of[k] for k in todo]):
            self.put_many(todo[start : start + len(feats)], feats)
            if on_batch is not None:
                on_batch(len(feats))
        return todo

    def get_many(self, shas: Sequence[str]) -> np.ndarray:
        """Stack the vectors for `shas` (all must be present) into an (n, dim) float32 matrix."""
        out = np.empty((len(shas), self.spec.dim), dtype=np.float32)
        for i, sha in enumerate(shas):
            out[i] = np.load(self.path(sha), allow_pickle=False)
        return out

    def remove_orphans(self, older_than_s: float = ORPHAN_TEMP_AGE_S) -> int:
        """Delete temp files that a killed writer left in the store (never a finished vector).

        The atomic writer names them `.<target>.<random>.tmp`; only its own rename turns one into
        a vector, so removing an orphan loses nothing. A temp file is an orphan when it is older
        than `older_than_s` or when its vector is stored already (a killed Dask worker's shard is
        retried elsewhere, so its temp files are superseded within the same run, however young).
        The featurize stage calls this before and after computing, whichever executor computes.
        """
        cutoff = time.time() - older_than_s
        removed = 0
        for tmp in [*self.dir.glob(".*.tmp"), *self.dir.glob("*/.*.tmp")]:
            target = tmp.with_name(tmp.name[1:].rsplit(".", 2)[0])
            try:
                if target.is_file() or tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:  # its writer renamed or removed it meanwhile
                continue
        if removed:
            log.info("removed %d temp files left by killed writers in %s", removed, self.dir)
        return removed

    def describe(self) -> dict:
        return json.loads((self.dir / "spec.json").read_text())
