"""The featurize stage: fill the feature store for the manifest's usable images, then write the
feature matrix the trainer reads."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd
from tqdm import tqdm

from defectflow import atomic
from defectflow.errors import ConfigError, DefectflowError
from defectflow.params import AnomalyParams, FeaturizeParams
from defectflow.workdir import Workdir

log = logging.getLogger(__name__)


class MissingVectorFiller(Protocol):
    """Computes the missing feature vectors outside this process and writes them into the feature store.

    Implemented by the scale-out layer (distributed.featurize_dask); the stage only needs this call.
    Returns where it ran, for the summary (e.g. `dask 2 workers: cpu`).
    """

    def __call__(self, store_root: Path, todo: Sequence[str], sources: Sequence[str], params: FeaturizeParams,
                 seed: int, progress: bool) -> str: ...


def feature_columns(dim: int) -> list[str]:
    return [f"f{i:04d}" for i in range(dim)]


def usable_images(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct image content that passed validation."""
    ok = manifest[manifest["status"] == "ok"]
    return ok.drop_duplicates("sha256")[["sha256", "path"]].reset_index(drop=True)


def featurize(data_dir: Path, workdir: Workdir, params: FeaturizeParams, seed: int, progress: bool = True,
              remote: MissingVectorFiller | None = None, anomaly: AnomalyParams | None = None) -> dict:
    """Compute features for images not yet in the store and write `features.parquet`.

    The missing vectors are computed in this process, or by `remote` (shards on Dask, chosen from
    the params.yaml `executor:` section by the caller); the rest of the stage is the same.

    With the anomaly head on (`anomaly`), the same backbone pass also stores each image's patch
    vectors (defectflow.anomaly.featurize).

    Returns a summary with how many vectors were computed vs reused and the throughput.
    """
    from defectflow.anomaly import featurize as anomaly_featurize
    from defectflow.features.store import FeatureStore, graph_cache
    from defectflow.features.tuned import check_mode, finetune_for_manifest
    from defectflow.inference.engine import build_extractor, calibration_set, feature_spec

    if not workdir.manifest.exists():
        raise DefectflowError(f"{workdir.manifest} not found: run `defectflow validate` first")
    manifest = pd.read_parquet(workdir.manifest)
    images = usable_images(manifest)
    if images.empty:
        raise DefectflowError("the manifest has no usable images (all quarantined?); see reports/validation.json")

    check_mode(params)
    finetune = None
    if params.mode == "finetune":  # the backbone is fine-tuned on the labelled rows first (features/tuned.py)
        params, finetune = finetune_for_manifest(data_dir, workdir, params, seed, progress)
    int8 = params.quantization == "int8"
    if int8 and remote is not None:
        raise ConfigError("featurize.quantization=int8 runs in this process only; set executor.kind=local")
    if int8 and anomaly is not None and anomaly.enabled:
        raise ConfigError("featurize.quantization=int8 cannot feed the anomaly head (its patch maps come from the "
                          "fp32 backbone): set anomaly.enabled=false with int8")
    calibration = calibration_set(manifest, data_dir, params.calibration_images) if int8 else ([], [])
    spec = feature_spec(params.backbone, params.weights, params.image_size, seed, params.quantization, calibration[0])
    store = FeatureStore(workdir.feature_store, spec)
    store.remove_orphans()  # left by a run killed mid-write; the folder is a DVC output
    todo = store.missing(images["sha256"])
    patches = anomaly_featurize.patch_store(workdir.feature_store, spec, anomaly)
    path_of = dict(zip(images["sha256"], images["path"], strict=True))

    started = time.perf_counter()
    device = "n/a (all cached)"
    sources = [str(Path(data_dir).resolve() / path_of[s]) for s in todo]
    if todo and remote is not None:
        device = remote(workdir.feature_store.resolve(), todo, sources, params, seed, progress)
        store.remove_orphans()  # a worker killed mid-write leaves a temp file its retried shard superseded
    local = [] if remote is not None else todo
    if patches:  # images without patch vectors (also those featurized on Dask) run here, once
        local = list(dict.fromkeys([*local, *patches.missing(images["sha256"])]))
    if local:
        sources = [str(Path(data_dir).resolve() / path_of[s]) for s in local]
        extractor, spec = build_extractor(
            params.backbone, params.weights, params.image_size, seed, engine=params.engine, device=params.device,
            batch_size=params.batch_size, num_workers=params.num_workers,
            graph_cache=graph_cache(workdir.feature_store), quantization=params.quantization,
            calibration=calibration if int8 else None,
            extra_outputs=anomaly_featurize.graph_outputs(patches))
        device = extractor.device_name
        log.info("featurizing %d new images with %s on %s (%d cached)", len(local), spec.featurizer_id, device,
                 len(images) - len(local))
        with tqdm(total=len(local), unit="img", desc=f"featurize {spec.name}", disable=not progress) as bar:
            if patches:
                anomaly_featurize.fill(store, patches, local, sources, extractor, on_batch=bar.update)
            else:
                store.fill(local, sources, extractor, on_batch=bar.update)
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
        "images_per_s": round(len(local) / seconds, 1) if local and seconds > 0 else None,
        "features_path": str(workdir.features),
    }
    atomic.write_json(workdir.features_spec, {"spec": spec.to_dict(), "run": summary,
                                              **({"finetune": finetune} if finetune else {})})
    return summary
