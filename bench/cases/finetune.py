"""Case (f): fine-tuning with the frozen blocks' output computed once (`featurize.finetune.cache_frozen`)
against the same recipe running the frozen blocks again in every epoch, the two taking turns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bench.cases.context import Context
from bench.timing import Result, compare, interleaved_rate_runs


def run(ctx: Context) -> list[Result]:
    from defectflow.features.finetune import LabelledRows, finetune
    from defectflow.params import FinetuneParams

    cfg = ctx.cfg["finetune"]
    n, epochs, size = int(cfg["images"]), int(cfg["epochs"]), int(cfg["image_size"])
    ctx.log(f"fine-tuning {cfg['backbone']} at {size} px, {n} images × {epochs} epochs, "
            f"first {cfg['freeze_blocks']} blocks frozen")
    paths = ctx.images.paths(n, "jpeg")
    captured = pd.Series(pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="min"))
    rows = LabelledRows(sha256=[str(i) for i in range(n)], sources=paths, y=np.arange(n, dtype=np.int8) % 2,
                        captured_at=captured, board_id=pd.Series(np.arange(n).astype(str)))
    # patience beyond the epochs: both variants run every epoch, whatever their validation AUC does
    ft = FinetuneParams(epochs=epochs, batch_size=int(ctx.cfg["batch_size"]), patience=epochs + 1,
                        freeze_blocks=int(cfg["freeze_blocks"]))

    def work(cache: bool) -> int:
        finetune(cfg["backbone"], "none", size, dataclasses.replace(ft, cache_frozen=cache), int(ctx.cfg["seed"]),
                 rows, ctx.device, progress=False)
        return n * epochs

    each_epoch, cached = interleaved_rate_runs([lambda: work(False), lambda: work(True)], ctx.repeats,
                                               sync=ctx.sync)
    params = {**cfg, "batch_size": ft.batch_size, "weights": "none (same compute as ImageNet weights)"}
    base = Result("f", f"{cfg['backbone']} {size} px, frozen blocks run every epoch", "image-epochs/s",
                  each_epoch, params=params)
    row = Result("f", f"{cfg['backbone']} {size} px, frozen blocks' output cached (cache_frozen)",
                 "image-epochs/s", cached, params=params)
    compare([row], base)
    row.note = ("includes decoding, the frozen pass (once vs every epoch) and each epoch's validation pass; "
                "the cached run cannot apply photometric augmentation")
    return [base, row]
