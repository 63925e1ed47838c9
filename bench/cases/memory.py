"""Memory against dataset size: featurizing 10× more images must not need more memory.

Each size runs in a fresh subprocess (so peaks do not carry over) that streams images from
disk through the extractor's batches into a FeatureStore, as the featurize stage does, while a
thread samples its current RSS (bench.memory_child): the rows are the peak sampled *during*
the run and its growth over the baseline taken after warm-up, so growth with the image count
is visible (the start-up peak that ru_maxrss reports is not).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.cases.context import Context
from bench.cases.incremental import content_keys
from bench.timing import Result


def run(ctx: Context) -> list[Result]:
    cfg = ctx.cfg["memory"]
    rows = []
    for n in cfg["sizes"]:
        ctx.log(f"memory: {n} images in a subprocess")
        paths = ctx.images.paths(int(n), "jpeg")
        job = ctx.scratch / f"memory-{n}.json"
        job.write_text(json.dumps({
            "paths": paths, "keys": content_keys(paths), "store": str(ctx.scratch / f"memory-store-{n}"),
            "backbone": cfg["backbone"], "image_size": int(cfg["image_size"]), "device": ctx.device,
            "batch_size": int(ctx.cfg["batch_size"]), "workers": int(cfg["workers"]), "seed": int(ctx.cfg["seed"]),
            "engine": cfg.get("engine", "torch"),
        }))
        done = subprocess.run([sys.executable, "-m", "bench.memory_child", str(job)], capture_output=True,
                              text=True, check=False, cwd=Path(__file__).resolve().parents[2])
        if done.returncode != 0:
            raise RuntimeError(f"memory child for {n} images failed:\n{done.stderr[-2000:]}")
        peak = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(Result("memory", f"peak RSS during the run, {n} images", "MiB", [peak["peak_mib"]],
                           params={"images": int(n), **{k: cfg[k] for k in ("backbone", "workers", "image_size")},
                                   **{k: peak[k] for k in ("baseline_mib", "growth_mib", "worker_peak_mib",
                                                           "samples", "computed", "engine")}}))
    for row in rows:
        first = rows[0]
        row.baseline, row.ratio = first.name, row.median / first.median
        row.note = (f"{row.params['images'] / first.params['images']:.0f}× the images, {row.ratio:.2f}× the peak; "
                    f"+{row.params['growth_mib']:.1f} MiB over the {row.params['baseline_mib']:,.0f} MiB baseline "
                    f"({row.params['engine']})")
    return rows
