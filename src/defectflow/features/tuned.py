"""featurize.mode=finetune glue: which rows a backbone is fine-tuned on, and the features the
fine-tuned backbone gives, for the final model (featurize stage) and for each CV fold (train
stage, via `FoldFeaturizer`). The fine-tuning itself is defectflow.features.finetune."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from defectflow.errors import ConfigError
from defectflow.features.backbones import is_composite, members
from defectflow.params import FeaturizeParams
from defectflow.workdir import Workdir

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # torch is imported only when something is fine-tuned
    from defectflow.features.finetune import LabelledRows

MODES = ("frozen", "finetune")


def check_mode(params: FeaturizeParams) -> None:
    if params.mode not in MODES:
        raise ConfigError(f"featurize.mode {params.mode!r} is not one of {', '.join(MODES)}")
    params.finetune_params()  # unknown keys fail here, before any work
    if params.mode == "finetune" and is_composite(params.backbone):
        raise ConfigError(f"featurize.mode=finetune fine-tunes one backbone, not the composite {params.backbone!r}: "
                          f"set featurize.backbone to one of {', '.join(members(params.backbone))}, or mode=frozen")


def cache_dir(workdir: Workdir) -> Path:
    """Fine-tuned weights live beside the feature vectors they produce (kept between runs)."""
    return workdir.feature_store / "finetuned"


def labelled_rows(meta: pd.DataFrame, data_dir: Path) -> LabelledRows:
    """Rows of a manifest/training table with a pass/fail label, as fine-tuning input."""
    from defectflow.features.finetune import LabelledRows

    meta = meta[meta["label"].isin(["pass", "fail"])]
    root = Path(data_dir).resolve()
    boards = meta["board_id"].fillna(meta["path"]).astype(str)
    return LabelledRows(sha256=list(meta["sha256"]), sources=[str(root / p) for p in meta["path"]],
                        y=(meta["label"] == "fail").to_numpy(np.int8), captured_at=meta["captured_at"],
                        board_id=boards)


def finetune_for_manifest(data_dir: Path, workdir: Workdir, params: FeaturizeParams, seed: int,
                          progress: bool = True) -> tuple[FeaturizeParams, dict | None]:
    """Fine-tune on every labelled usable image of the manifest (the final model's backbone);
    return params whose `weights` is the fine-tuned file, and the record train needs for the
    per-fold fine-tunes (features.json `finetune`). Fewer labelled rows than
    `finetune.min_rows`: the params unchanged and no record (frozen features, logged)."""
    from defectflow.features.finetune import finetuned_weights

    manifest = pd.read_parquet(workdir.manifest)
    ok = manifest[manifest["status"] == "ok"].drop_duplicates("sha256")
    rows = labelled_rows(ok, data_dir)
    if too_few_to_finetune(len(rows), params):
        log.warning("featurize.mode=finetune: %d labelled rows < featurize.finetune.min_rows=%d; the ImageNet "
                    "features stay frozen", len(rows), params.finetune_params().min_rows)
        return params, None
    path = finetuned_weights(cache_dir(workdir), params.backbone, params.weights, params.image_size,
                             params.finetune_params(), seed, rows, params.device, progress)
    record = {"data_dir": str(Path(data_dir).resolve()), "params": dataclasses.asdict(params), "seed": seed,
              "weights_path": str(path), "n_rows": len(rows)}
    return dataclasses.replace(params, weights=str(path)), record


def too_few_to_finetune(n_rows: int, params: FeaturizeParams) -> bool:
    """Whether a training window is too small to fine-tune on (it keeps the frozen features)."""
    return n_rows < params.finetune_params().min_rows


def finetune_record(workdir: Workdir) -> dict | None:
    """features.json's fine-tuning record, None for frozen features."""
    if not workdir.features_spec.exists():
        return None
    return json.loads(workdir.features_spec.read_text()).get("finetune")


class FoldFeaturizer:
    """Features for one CV fold from a backbone fine-tuned on that fold's training window only.

    Called with a fold, returns (X, info): X has the features of the fold's training and test
    rows (NaN elsewhere: no other row is ever computed or used), info the fold's weights file
    and how many rows it was fine-tuned on (merged into cv/folds.json; None and 0 for a window
    under `finetune.min_rows`, which keeps the frozen features).
    """

    def __init__(self, record: dict, meta: pd.DataFrame, workdir: Workdir, progress: bool = True):
        self.params = FeaturizeParams(**record["params"])
        self.seed = int(record["seed"])
        self.data_dir = Path(record["data_dir"])
        self.meta = meta
        self.workdir = workdir
        self.progress = progress

    def __call__(self, fold) -> tuple[np.ndarray, dict]:
        from defectflow.features.backbones import backbone_spec
        from defectflow.features.finetune import finetuned_weights
        from defectflow.features.store import FeatureStore, graph_cache
        from defectflow.inference.engine import build_extractor

        p = self.params
        train_rows = labelled_rows(self.meta.iloc[fold.train_idx], self.data_dir)
        info: dict[str, str | int | None]
        if too_few_to_finetune(len(train_rows), p):
            weights, info = p.weights, {"finetuned_weights": None, "finetune_rows": 0}
        else:
            path = finetuned_weights(cache_dir(self.workdir), p.backbone, p.weights, p.image_size,
                                     p.finetune_params(), self.seed, train_rows, p.device, self.progress)
            weights, info = str(path), {"finetuned_weights": path.name, "finetune_rows": len(train_rows)}
        spec = backbone_spec(p.backbone, weights, p.image_size, self.seed)
        store = FeatureStore(self.workdir.feature_store, spec)
        needed = np.r_[fold.train_idx, fold.test_idx]
        shas = list(self.meta["sha256"].iloc[needed])
        sources = [str(self.data_dir / q) for q in self.meta["path"].iloc[needed]]
        if store.missing(shas):  # the stage's engine: on CPU ONNX Runtime, 6.6× torch (docs/performance.md)
            extractor, spec = build_extractor(p.backbone, weights, p.image_size, self.seed, engine=p.engine,
                                              device=p.device, batch_size=p.batch_size, num_workers=p.num_workers,
                                              graph_cache=graph_cache(self.workdir.feature_store))
            store.fill(shas, sources, extractor)
        X = np.full((len(self.meta), spec.dim), np.nan, dtype=np.float32)
        X[needed] = store.get_many(shas)
        return X, info
