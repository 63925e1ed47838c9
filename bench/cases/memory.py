"""Peak memory against dataset size: featurizing 10× more images must not need more memory.

Each size runs in a fresh subprocess (so peaks do not carry over) that streams images from
disk through FeatureExtractor.batches into a FeatureStore, as the featurize stage does, and
reports its peak RSS and the largest DataLoader worker's.
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
        }))
        done = subprocess.run([sys.executable, "-m", "bench.memory_child", str(job)], capture_output=True,
                              text=True, check=False, cwd=Path(__file__).resolve().parents[2])
        if done.returncode != 0:
            raise RuntimeError(f"memory child for {n} images failed:\n{done.stderr[-2000:]}")
        peak = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(Result("memory", f"peak RSS featurizing {n} images", "MiB", [peak["main_mib"]],
                           params={"images": int(n), **{k: cfg[k] for k in ("backbone", "workers", "image_size")},
                                   "worker_peak_mib": peak["worker_mib"], "computed": peak["computed"]}))
    for row in rows:
        row.baseline, row.ratio = rows[0].name, row.median / rows[0].median
        row.note = f"{row.params['images'] / rows[0].params['images']:.0f}× the images, {row.ratio:.2f}× the peak RSS"
    return rows
