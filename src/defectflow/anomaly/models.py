"""Good-images-only patch models: an image's patches in, one anomaly value per patch out.

Two families, chosen by measurement (bench/anomaly_quality.py, docs/anomaly.md):
- `PatchCore`: a memory bank of patch vectors from good images, thinned to at most
  `coreset_size` rows by greedy k-centre selection (every good patch stays close to a kept
  one); a patch's anomaly is its distance to the nearest kept patch. Location-free: a part a
  little off centre is still normal.
- `PaDiM`: a Gaussian (mean, covariance) per patch location; a patch's anomaly is its
  Mahalanobis distance. Memory is fixed by the map size, whatever the number of images.

Both fit from a stream of (images, locations, channels) chunks, so fitting memory is bounded
by `max_candidates` (PatchCore's sample of patches before thinning) or the Gaussian sums
(PaDiM), never by the number of good images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from defectflow import atomic
from defectflow.errors import ConfigError

METHODS = ("patchcore", "padim")
Chunks = Callable[[], Iterator[np.ndarray]]  # a fresh iterator over (n, P, C) float32 chunks each call


class PatchCore:
    def __init__(self, bank: np.ndarray):
        self.bank = np.ascontiguousarray(bank, dtype=np.float32)
        self._bank_sq = np.einsum("ij,ij->i", self.bank, self.bank)

    @classmethod
    def fit(cls, chunks: Chunks, n_images: int, coreset_size: int, max_candidates: int, seed: int) -> PatchCore:
        rng = np.random.default_rng(seed)
        candidates = sample_patches(chunks, n_images, max_candidates, rng)
        return cls(candidates[greedy_coreset(candidates, coreset_size, rng)])

    def patch_scores(self, patches: np.ndarray) -> np.ndarray:
        """(n, P, C) → (n, P) Euclidean distance of each patch to its nearest bank row."""
        n, p, c = patches.shape
        flat = patches.reshape(-1, c).astype(np.float32, copy=False)
        out = np.empty(len(flat), dtype=np.float32)
        step = max(1, 2**24 // max(len(self.bank), 1))  # ≤ 64 MiB of distances at a time
        for s in range(0, len(flat), step):
            q = flat[s:s + step]
            d2 = np.einsum("ij,ij->i", q, q)[:, None] + self._bank_sq[None, :] - 2.0 * (q @ self.bank.T)
            out[s:s + step] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
        return out.reshape(n, p)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"bank": self.bank}

    @property
    def nbytes(self) -> int:
        return int(self.bank.nbytes)


class PaDiM:
    def __init__(self, mean: np.ndarray, precision: np.ndarray, channels: np.ndarray):
        self.mean = mean.astype(np.float32)            # (P, d)
        self.precision = precision.astype(np.float32)  # (P, d, d): inverse regularised covariances
        self.channels = channels                       # the d channels kept (all when C ≤ max_dims)

    @classmethod
    def fit(cls, chunks: Chunks, n_images: int, max_dims: int, seed: int, eps: float = 0.01) -> PaDiM:
        channels = None
        total = sums = outer = None
        for chunk in chunks():
            if channels is None:  # random channel subset, as PaDiM does for wide layers
                c = chunk.shape[2]
                keep = np.sort(np.random.default_rng(seed).choice(c, min(c, max_dims), replace=False))
                channels = keep
                total, sums = 0, np.zeros((chunk.shape[1], len(keep)))
                outer = np.zeros((chunk.shape[1], len(keep), len(keep)))
            x = chunk[:, :, channels].astype(np.float64)
            total += len(x)
            sums += x.sum(axis=0)
            outer += np.einsum("npi,npj->pij", x, x)
        if channels is None or total < 2:
            raise ConfigError("the anomaly model needs at least 2 good images to fit")
        mean = sums / total
        cov = (outer - total * np.einsum("pi,pj->pij", mean, mean)) / (total - 1)
        cov += eps * np.eye(len(channels))[None]
        return cls(mean, np.linalg.inv(cov), channels)

    def patch_scores(self, patches: np.ndarray) -> np.ndarray:
        """(n, P, C) → (n, P) Mahalanobis distance of each patch to its location's Gaussian."""
        d = patches[:, :, self.channels].astype(np.float32) - self.mean[None]
        return np.sqrt(np.maximum(np.einsum("npi,pij,npj->np", d, self.precision, d), 0.0))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "precision": self.precision, "channels": self.channels}

    @property
    def nbytes(self) -> int:
        return int(self.mean.nbytes + self.precision.nbytes)


PatchModel = PatchCore | PaDiM


def fit_patch_model(method: str, chunks: Chunks, n_images: int, *, coreset_size: int, max_candidates: int,
                    seed: int) -> PatchModel:
    """Fit `method` on the good images streamed by `chunks` (PaDiM keeps ≤ 100 channels)."""
    if method == "patchcore":
        return PatchCore.fit(chunks, n_images, coreset_size, max_candidates, seed)
    if method == "padim":
        return PaDiM.fit(chunks, n_images, max_dims=100, seed=seed)
    raise ConfigError(f"anomaly.method {method!r} is not one of {', '.join(METHODS)}")


def sample_patches(chunks: Chunks, n_images: int, max_candidates: int, rng: np.random.Generator) -> np.ndarray:
    """At most ~max_candidates patch rows, the same number from every image (all when they fit)."""
    parts = []
    for chunk in chunks():
        n, p, c = chunk.shape
        per_image = min(p, max(1, math.ceil(max_candidates / max(n_images, 1))))
        if per_image == p:
            parts.append(chunk.reshape(-1, c))
            continue
        pick = np.argsort(rng.random((n, p)), axis=1)[:, :per_image]
        parts.append(np.take_along_axis(chunk, pick[:, :, None], axis=1).reshape(-1, c))
    if not parts:
        raise ConfigError("the anomaly model needs at least one good image to fit")
    return np.concatenate(parts).astype(np.float32, copy=False)


def greedy_coreset(x: np.ndarray, size: int, rng: np.random.Generator, proj_dims: int = 128) -> np.ndarray:
    """Indices of ≤ `size` rows chosen by greedy k-centre (farthest point first).

    Distances are taken in a random projection to `proj_dims` (Johnson–Lindenstrauss: close
    enough for choosing, and cheaper for wide layers).
    """
    if len(x) <= size:
        return np.arange(len(x))
    if x.shape[1] > proj_dims:
        x = x @ rng.normal(0, 1 / math.sqrt(proj_dims), (x.shape[1], proj_dims)).astype(np.float32)
    sq = np.einsum("ij,ij->i", x, x)
    chosen = np.empty(size, dtype=np.int64)
    chosen[0] = int(rng.integers(len(x)))
    nearest = np.full(len(x), np.inf, dtype=np.float32)
    for k in range(1, size + 1):
        c = chosen[k - 1]
        np.minimum(nearest, sq + sq[c] - 2.0 * (x @ x[c]), out=nearest)
        if k < size:
            chosen[k] = int(np.argmax(nearest))
    return chosen


def save_model(model: PatchModel, path: Path, meta: dict) -> None:
    """One .npz with the arrays and a JSON header (method, layer, threshold, map geometry)."""
    import json

    with atomic.atomic_open(path, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps({**meta, "method": type(model).__name__.lower()})), **model.arrays())


def load_model(path: Path) -> tuple[PatchModel, dict]:
    import json

    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta["method"] == "patchcore":
            return PatchCore(z["bank"]), meta
        return PaDiM(z["mean"], z["precision"], z["channels"]), meta
