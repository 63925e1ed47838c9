"""Drift on unlabelled images: per camera, the last window of images against the training window.

Three views of "these images are not like the ones the model learned from", none needing a label:
- pooled-embedding shift: the backbone's feature vectors (PCA fitted on the reference, then
  standardised) compared by the maximum mean discrepancy with a Gaussian kernel (median-distance
  bandwidth), p-value from a permutation test;
- image statistics: brightness (mean luma), contrast (luma std), sharpness (variance of the
  Laplacian of luma) and saturation (mean HSV saturation), each by a two-sample
  Kolmogorov–Smirnov test;
- the anomaly-score distribution (the anomaly head fitted on reference images), by KS as well.
A camera drifts when any of the six p-values is below `drift.alpha` / 6 (Bonferroni: the chance
of a false alarm per camera and check stays ≤ alpha).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from defectflow.params import DriftParams

IMAGE_STATS = ("brightness", "contrast", "sharpness", "saturation")
STATS_SIZE = 128  # statistics are taken at one size, so cameras of different resolution compare


def image_statistics(rgb: np.ndarray) -> dict[str, float]:
    """Brightness, contrast, Laplacian-variance sharpness and saturation of an H×W×3 uint8 image (0–1 scale)."""
    x = rgb.astype(np.float32) / 255.0
    luma = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    lap = (luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4 * luma[1:-1, 1:-1])
    hi, lo = x.max(axis=2), x.min(axis=2)
    saturation = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-6), 0.0)
    return {"brightness": float(luma.mean()), "contrast": float(luma.std()), "sharpness": float(lap.var()),
            "saturation": float(saturation.mean())}


def statistics_of(paths: list[str]) -> pd.DataFrame:
    from defectflow.features.imaging import load_uint8

    return pd.DataFrame([image_statistics(load_uint8(p, STATS_SIZE)) for p in paths], columns=list(IMAGE_STATS))


def mmd_test(a: np.ndarray, b: np.ndarray, permutations: int, rng: np.random.Generator) -> tuple[float, float]:
    """(MMD², permutation p-value) between samples a and b (rows), Gaussian kernel, median bandwidth."""
    z = np.concatenate([a, b]).astype(np.float64)
    sq = np.einsum("ij,ij->i", z, z)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
    bandwidth = np.median(d2[np.triu_indices(len(z), 1)]) or 1.0
    k = np.exp(-d2 / bandwidth)
    n = len(a)

    def mmd2(order: np.ndarray) -> float:
        kk = k[np.ix_(order, order)]
        xx, yy, xy = kk[:n, :n], kk[n:, n:], kk[:n, n:]
        m = len(z) - n
        return ((xx.sum() - np.trace(xx)) / (n * (n - 1)) + (yy.sum() - np.trace(yy)) / (m * (m - 1))
                - 2 * xy.mean())

    observed = mmd2(np.arange(len(z)))
    null = np.array([mmd2(rng.permutation(len(z))) for _ in range(permutations)])
    return float(observed), float((1 + (null >= observed).sum()) / (1 + permutations))


def embedding_view(reference: np.ndarray, recent: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Both samples in the reference's top principal components, scaled by the reference's spread."""
    mean = reference.mean(axis=0)
    _, s, vt = np.linalg.svd(reference - mean, full_matrices=False)
    basis = vt[:dims]
    scale = (s[:dims] / np.sqrt(max(len(reference) - 1, 1))) + 1e-8
    return ((reference - mean) @ basis.T) / scale, ((recent - mean) @ basis.T) / scale


@dataclass(frozen=True)
class CameraDrift:
    camera_id: str
    verdict: str             # drift | ok | insufficient_data
    n_reference: int
    n_recent: int
    window_start: str | None
    window_end: str | None
    p_values: dict[str, float]
    shifts: dict[str, float]  # recent median − reference median, in reference standard deviations
    mmd2: float | None

    @property
    def drifted(self) -> bool:
        return self.verdict == "drift"

    def as_dict(self) -> dict:
        return asdict(self)


def compare_windows(camera_id: str, reference: pd.DataFrame, recent: pd.DataFrame, ref_emb: np.ndarray,
                    rec_emb: np.ndarray, params: DriftParams, seed: int) -> CameraDrift:
    """Test one camera's recent rows against its reference rows (columns IMAGE_STATS + anomaly_score)."""
    from scipy.stats import ks_2samp

    window = (recent["captured_at"].min(), recent["captured_at"].max()) if len(recent) else (None, None)
    base = dict(camera_id=camera_id, n_reference=len(reference), n_recent=len(recent),
                window_start=None if window[0] is None else str(window[0]),
                window_end=None if window[1] is None else str(window[1]))
    if len(recent) < params.min_images or len(reference) < params.min_images:
        return CameraDrift(verdict="insufficient_data", p_values={}, shifts={}, mmd2=None, **base)
    rng = np.random.default_rng(seed)
    pick_ref = rng.permutation(len(reference))[:params.max_per_side]
    pick_rec = rng.permutation(len(recent))[:params.max_per_side]
    a, b = embedding_view(ref_emb[pick_ref], rec_emb[pick_rec], params.pca_dims)
    mmd2, p_mmd = mmd_test(a, b, params.permutations, rng)
    p_values, shifts = {"embedding_mmd": p_mmd}, {}
    for column in (*IMAGE_STATS, "anomaly_score"):
        ref, rec = reference[column].to_numpy(float), recent[column].to_numpy(float)
        p_values[column] = float(ks_2samp(ref, rec).pvalue)
        shifts[column] = float((np.median(rec) - np.median(ref)) / (ref.std() + 1e-12))
    drifted = min(p_values.values()) < params.alpha / len(p_values)
    return CameraDrift(verdict="drift" if drifted else "ok", p_values={k: round(v, 6) for k, v in p_values.items()},
                       shifts={k: round(v, 4) for k, v in shifts.items()}, mmd2=round(mmd2, 6), **base)


def drift_by_camera(table: pd.DataFrame, embeddings: np.ndarray, reference_until: pd.Timestamp,
                    params: DriftParams, seed: int) -> list[CameraDrift]:
    """Per camera seen in the last `window_days`: its recent rows against its reference rows
    (captured ≤ reference_until); a camera with too few reference rows of its own (a new
    station) is compared with the whole line's reference."""
    t = pd.to_datetime(table["captured_at"], utc=True)
    is_ref = (t <= reference_until).to_numpy()
    is_recent = (t > max(t.max() - pd.Timedelta(days=params.window_days), reference_until)).to_numpy()
    cameras = table["camera_id"].fillna("unknown").astype(str).to_numpy()
    out = []
    for k, camera in enumerate(sorted(set(cameras[is_recent]))):
        rec = is_recent & (cameras == camera)
        ref = is_ref & (cameras == camera)
        if ref.sum() < params.min_images:
            ref = is_ref
        out.append(compare_windows(camera, table[ref], table[rec], embeddings[ref], embeddings[rec], params, seed + k))
    return out
