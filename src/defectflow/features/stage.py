"""The featurize stage: fill the feature store for the manifest's usable images, then write the
feature matrix the trainer reads."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from defectflow import atomic
from defectflow.errors import ConfigError, DefectflowError
from defectflow.distributed.executor import is_distributed
from defectflow.params import ExecutorParams, FeaturizeParams
from defectflow.workdir import Workdir

log = logging.getLogger(__name__)


def feature_columns(dim: int) -> list[str]:
    return [f"f{i:04d}" for i in range(dim)]


def usable_images(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct image content that passed validation."""
    ok = manifest[manifest["status"] == "ok"]
    return ok.drop_duplicates("sha256")[["sha256", "path"]].reset_index(drop=True)


def featurize(data_dir: Path, workdir: Workdir, params: FeaturizeParams, seed: int, progress: bool = True,
              executor: ExecutorParams | None = None) -> dict:
    """Compute features for images not yet in the store and write `features.parquet`.

    The missing vectors are computed in this process, or as shards on Dask when `executor` (the
    params.yaml `executor:` section) is distributed; the rest of the stage is the same.

    Returns a summary with how many vectors were computed vs reused and the throughput.
    """
    from defectflow.features.store import FeatureStore
    from defectflow.inference.engine import build_extractor, calibration_set, feature_spec

    if not workdir.manifest.exists():
        raise DefectflowError(f"{workdir.manifest} not found: run `defectflow validate` first")
    manifest = pd.read_parquet(workdir.manifest)
    images = usable_images(manifest)
    if images.empty:
        raise DefectflowError("the manifest has no usable images (all quarantined?); see reports/validation.json")

    int8 = params.quantization == "int8"
    if int8 and is_distributed(executor):
        raise ConfigError("featurize.quantization=int8 runs in this process only; set executor.kind=local")
    calibration = calibration_set(manifest, data_dir, params.calibration_images) if int8 else ([], [])
    spec = feature_spec(params.backbone, params.weights, params.image_size, seed, params.quantization, calibration[0])
    store = FeatureStore(workdir.feature_store, spec)
    todo = store.missing(images["sha256"])
    path_of = dict(zip(images["sha256"], images["path"], strict=True))

    started = time.perf_counter()
    device = "n/a (all cached)"
    sources = [str(Path(data_dir).resolve() / path_of[s]) for s in todo]
    if todo and is_distributed(executor):
        from defectflow.distributed.featurize_dask import featurize_on_dask

        device = featurize_on_dask(executor, workdir.feature_store.resolve(), todo, sources, params, seed, progress)
    elif todo:
        extractor, spec = build_extractor(
            params.backbone, params.weights, params.image_size, seed, engine=params.engine, device=params.device,
            batch_size=params.batch_size, num_workers=params.num_workers, graph_cache=workdir.feature_store / "graphs",
            quantization=params.quantization, calibration=calibration if int8 else None)
        device = extractor.device_name
        log.info("featurizing %d new images with %s on %s (%d cached)", len(todo), spec.featurizer_id, device,
                 len(images) - len(todo))
        with tqdm(total=len(todo), unit="img", desc=f"featurize {spec.name}", disable=not progress) as bar:
            store.fill(todo, sources, extractor, on_batch=bar.update)
    seconds = time.perf_counter() - started

    matrix = store.get_many(list(images["sha256"]))
    frame = pd.DataFrame(matrix, columns=feature_columns(spec.dim))
    frame.insert(0, "sha256", images["sha256"].to_numpy())
    with atomic.atomic_path(workdir.features, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)

    summary = {
        "featurizer_id": spec.featurizer_id,
        "backbone": spec.name,
        "feature_dim": spec.dim,
        "device": device,
        "n_images": int(len(images)),
        "n_computed": len(todo),
        "n_cached": int(len(images) - len(todo)),
        "seconds": round(seconds, 3),
        "images_per_s": round(len(todo) / seconds, 1) if todo and seconds > 0 else None,
        "features_path": str(workdir.features),
    }
    atomic.write_json(workdir.features_spec, {"spec": spec.to_dict(), "run": summary})
    return summary
