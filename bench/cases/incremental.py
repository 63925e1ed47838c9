"""Case (c): featurize N images into the content-addressed store, add N×share new ones, run
again: the second run must cost in proportion to the new images, not to N."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from bench.cases.context import Context
from bench.timing import Result, seconds_runs


def content_keys(paths: list[str]) -> list[str]:
    """sha256 of each file (the validate stage's manifest provides these in the pipeline)."""
    return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


def run(ctx: Context) -> list[Result]:
    from defectflow.features.store import FeatureStore

    cfg = ctx.cfg["incremental"]
    n = int(cfg["n"])
    new = max(1, round(n * float(cfg["new_share"])))
    ctx.log(f"incremental: {n} images, then {new} new")
    paths = ctx.images.paths(n + new, "jpeg")
    keys = content_keys(paths)
    extractor = ctx.extractor(cfg["backbone"], {"workers": cfg.get("workers", 0)})
    root = ctx.scratch / "incremental-store"
    first, second, computed = [], [], []

    for _ in range(ctx.repeats):
        shutil.rmtree(root, ignore_errors=True)
        store = FeatureStore(root, extractor.spec)
        first += seconds_runs(lambda s=store: s.fill(keys[:n], paths[:n], extractor), 1, sync=ctx.sync)
        second += seconds_runs(lambda s=store: computed.append(len(s.fill(keys, paths, extractor))), 1, sync=ctx.sync)
    third = seconds_runs(lambda: store.fill(keys, paths, extractor), ctx.repeats)  # nothing new: scan only
    if set(computed) != {new}:
        raise RuntimeError(f"incremental run computed {sorted(set(computed))} vectors, expected {new}")

    params = {"backbone": cfg["backbone"], "n": n, "new": new, "store": "FeatureStore + FeatureExtractor"}
    full = Result("c", f"first run: {n} images", "s", first, params=params)
    incr = Result("c", f"second run: {n} cached + {new} new", "s", second, params=params)
    noop = Result("c", f"third run: {n + new} cached, nothing new", "s", third, params=params)
    for row in (incr, noop):
        row.baseline, row.ratio = full.name, row.median / full.median
    per_new_first = full.median / n
    per_new_second = incr.median / new
    incr.note = (f"{incr.ratio:.2%} of the first run for {new / n:.1%} new images; "
                 f"{per_new_second * 1e3:.0f} ms per new image vs {per_new_first * 1e3:.0f} ms in the first run")
    noop.note = f"cache scan of {n + new} keys: {noop.median / (n + new) * 1e6:.0f} µs per key"
    return [full, incr, noop]
