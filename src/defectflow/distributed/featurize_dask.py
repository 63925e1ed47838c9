"""Featurization as independent shards on Dask workers.

The images still missing from the feature store are sorted by sha256 and cut into fixed-size
shards; each shard is one Dask task. A worker process builds its extractor once (a per-process
cache) by the same engine rule as the local path (`featurize.engine`, `inference.engine`: on a
CPU worker ONNX Runtime by default, on a GPU torch), reading the backbone's ONNX graph from the
store's `graphs/` folder, where the driver exported it before the first shard. The worker itself writes
each vector into the shared content-addressed store, atomically, so:
- a shard that is retried (it raised, or its worker died) skips what is already stored and
  recomputes only the rest; a vector is never duplicated (same key, same file) and never
  half-written (temp file + rename);
- the driver only receives small summaries, never the vectors.
Workers must see the images and the store at the same paths as the driver (one machine, or a
shared volume on Kubernetes: see docs/dask.md).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from defectflow.distributed.executor import dask_client, is_distributed, worker_addresses
from defectflow.features.store import graph_cache
from defectflow.params import ExecutorParams, FeaturizeParams

if TYPE_CHECKING:
    from defectflow.features.extract import FeatureExtractor
    from defectflow.inference.pipeline import EngineExtractor

log = logging.getLogger(__name__)

# Per worker process: (featurizer_id, engine, device, batch_size) → extractor. Built once, reused
# by every shard the process runs, so the backbone is loaded once per worker, not once per task.
_EXTRACTORS: dict[tuple[str, str, str, int], FeatureExtractor | EngineExtractor] = {}
_EXTRACTORS_LOCK = threading.Lock()


def plan_shards(todo: Sequence[str], sources: Sequence[str], shard_size: int) -> list[tuple[list[str], list[str]]]:
    """(sha256s, image paths) per shard: fixed-size chunks of the missing keys in sha256 order, so
    the shards depend only on the content to compute, not on the manifest's row order."""
    pairs = sorted(zip(todo, sources, strict=True))
    return [([s for s, _ in chunk], [p for _, p in chunk])
            for chunk in (pairs[i : i + shard_size] for i in range(0, len(pairs), shard_size))]


def vector_filler(executor: ExecutorParams) -> DaskVectorFiller | None:
    """The featurize stage's remote filler for `executor`: None (compute in this process) for `local`."""
    return DaskVectorFiller(executor) if is_distributed(executor) else None


class DaskVectorFiller:
    """`features.stage.MissingVectorFiller` on the Dask cluster that `executor` names."""

    def __init__(self, executor: ExecutorParams):
        self.executor = executor

    def __call__(self, store_root: Path, todo: Sequence[str], sources: Sequence[str], params: FeaturizeParams,
                 seed: int, progress: bool) -> str:
        return featurize_on_dask(self.executor, store_root, todo, sources, params, seed, progress)


def featurize_on_dask(executor: ExecutorParams, store_root: Path, todo: Sequence[str], sources: Sequence[str],
                      params: FeaturizeParams, seed: int, progress: bool = True) -> str:
    """Fill the store with vectors for `todo` (sha256s whose images are at `sources`) on Dask.

    Returns a description of where it ran (for the stage summary), e.g. `dask 2 workers: cpu`.
    """
    from distributed import as_completed

    shards = plan_shards(todo, sources, executor.shard_size)
    export_graph_once(graph_cache(store_root), params, seed)
    devices: set[str] = set()
    with dask_client(executor) as client:
        n_workers = len(worker_addresses(client))
        log.info("featurizing %d images in %d shards on %d Dask workers", len(todo), len(shards), n_workers)
        futures = [client.submit(featurize_shard, str(store_root), shas, paths, params, seed,
                                 retries=executor.task_retries, pure=False)
                   for shas, paths in shards]
        with tqdm(total=len(todo), unit="img", desc="featurize on dask", disable=not progress) as bar:
            for future in as_completed(futures):
                done = future.result()
                devices.add(done["device"])
                bar.update(done["n_images"])
    return f"dask {n_workers} workers: {', '.join(sorted(devices))}"


def export_graph_once(graph_cache: Path, params: FeaturizeParams, seed: int) -> None:
    """Export the backbone's ONNX graph into the shared cache before the first shard, when the engine
    rule picks an ONNX engine, so the workers find it there instead of each tracing the backbone.

    The workers' device is not known here: an explicit CUDA device gets the CUDA rule, anything
    else the CPU rule (an `auto` cluster of GPU workers then has a graph it does not use, exported
    once per featurizer). A worker that still finds no graph exports it itself; that is safe while
    others do the same, since the export writes a temp file and renames it onto the content-addressed
    name: racing workers each rename a complete graph of the same model, and no reader sees a partial one.
    """
    from defectflow.features.backbones import backbone_spec, build_backbone
    from defectflow.inference.engine import resolve_engine
    from defectflow.inference.export import cached_backbone_graph

    if resolve_engine(params.engine, "cuda" if params.device.startswith("cuda") else "cpu") == "torch":
        return
    spec = backbone_spec(params.backbone, params.weights, params.image_size, seed)
    cached_backbone_graph(spec, lambda: build_backbone(params.backbone, params.weights, params.image_size, seed)[0],
                          graph_cache)


def featurize_shard(store_root: str, shas: list[str], paths: list[str], params: FeaturizeParams,
                    seed: int) -> dict:
    """Runs on a worker: compute and store the vectors of one shard that are not stored yet."""
    from defectflow.features.backbones import backbone_spec
    from defectflow.features.store import FeatureStore

    store = FeatureStore(store_root, backbone_spec(params.backbone, params.weights, params.image_size, seed))
    extractor = _worker_extractor(params, seed, graph_cache(store_root))
    computed = store.fill(shas, paths, extractor)  # a retried shard computes only what is still missing
    return {"n_images": len(shas), "n_computed": len(computed), "device": extractor.device_name}


def _worker_extractor(params: FeaturizeParams, seed: int, graph_cache: Path) -> FeatureExtractor | EngineExtractor:
    """The extractor of this worker process, built on first use with `featurize.engine`'s rule."""
    import torch

    from defectflow.features.backbones import backbone_spec
    from defectflow.features.extract import select_device
    from defectflow.inference.engine import build_extractor, resolve_engine

    spec = backbone_spec(params.backbone, params.weights, params.image_size, seed)
    key = (spec.featurizer_id, params.engine, params.device, params.batch_size)
    with _EXTRACTORS_LOCK:
        if key not in _EXTRACTORS:
            engine = resolve_engine(params.engine, select_device(params.device).type)
            # Dask's worker processes are daemonic and may not fork DataLoader workers (torch's
            # num_workers); the ONNX engines' decode threads are threads and stay.
            daemon = multiprocessing.current_process().daemon
            decoders = 0 if engine == "torch" and daemon else params.num_workers
            # One compute thread per Dask thread: the worker processes already share the cores.
            threads = _worker_threads()
            extractor, _ = build_extractor(params.backbone, params.weights, params.image_size, seed, engine=engine,
                                           device=params.device, batch_size=params.batch_size, num_workers=decoders,
                                           graph_cache=graph_cache, threads=threads)
            if extractor.device_name == "cpu":  # torch on the CPU
                torch.set_num_threads(threads)
            _EXTRACTORS[key] = extractor
        return _EXTRACTORS[key]


def _worker_threads() -> int:
    from distributed import get_worker

    try:
        return max(1, get_worker().state.nthreads)
    except ValueError:  # called outside a worker (tests, debugging)
        return 1
