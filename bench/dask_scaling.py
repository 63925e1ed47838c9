"""Bench case: featurization speed-up from Dask workers (1 vs 2 worker processes).

`run(ctx)` is the case for the bench runner (rows of `bench.timing.Result`); run this file
alone (`python -m bench.dask_scaling [--images N] [--repeats R]`) to measure and write
bench/results/dask-<date>.md. Each cluster is started and warmed up (backbone built on every
worker) before the clock starts, so the figures are the sharded featurization itself — the
part that grows with the dataset — not the seconds a cluster takes to start. The in-process
path (one process, torch using every core) is measured in the same run as the reference.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.cases.incremental import content_keys
from bench.timing import Result, rate_runs

DEFAULTS = {"images": 256, "image_size": 128, "batch_size": 16, "shard_size": 32, "workers": [1, 2]}


def run(ctx) -> list[Result]:
    cfg = {**DEFAULTS, **ctx.cfg.get("dask_scaling", {})}
    ctx.log(f"dask scaling: {cfg['images']} images, workers {cfg['workers']}")
    paths = ctx.images.paths(int(cfg["images"]), "jpeg")
    return measure(paths, cfg, ctx.scratch / "dask-scaling", ctx.repeats, int(ctx.cfg["seed"]))


def measure(paths: list[str], cfg: dict, scratch: Path, repeats: int, seed: int) -> list[Result]:
    from defectflow.params import FeaturizeParams

    params = FeaturizeParams(backbone="mobilenet_v2", weights="none", image_size=int(cfg["image_size"]),
                             batch_size=int(cfg["batch_size"]), num_workers=0, device="cpu")
    keys = content_keys(paths)
    shape = {"images": len(paths), "image_size": params.image_size, "batch_size": params.batch_size,
             "shard_size": int(cfg["shard_size"]), "backbone": "mobilenet_v2 (weights=none: same compute)"}
    rows = [Result("dask", "in-process (torch threads = usable cores)", "img/s",
                   rate_runs(lambda: _fill_in_process(keys, paths, params, seed, scratch), repeats), params=shape)]
    for n_workers in cfg["workers"]:
        runs = _dask_runs(keys, paths, params, seed, scratch, n_workers, int(cfg["shard_size"]), repeats)
        name = f"Dask LocalCluster, {n_workers} worker{'s' if n_workers > 1 else ''} × 1 thread"
        rows.append(Result("dask", name, "img/s", runs, params=shape))
    one_worker = rows[1]
    for row in rows[2:]:
        row.baseline, row.ratio = one_worker.name, row.median / one_worker.median
        row.note = f"{row.ratio:.2f}× the 1-worker rate"
    rows[0].note = "the local executor: one process, intra-op threads on every core"
    return rows


def _fresh(scratch: Path) -> Path:
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    return scratch


def _fill_in_process(keys, paths, params, seed, scratch: Path) -> int:
    from defectflow.features.backbones import build_backbone
    from defectflow.features.extract import FeatureExtractor
    from defectflow.features.store import FeatureStore

    model, spec = build_backbone(params.backbone, params.weights, params.image_size, seed)
    extractor = FeatureExtractor(model, spec, params.device, params.batch_size, params.num_workers)
    return len(FeatureStore(_fresh(scratch / "local"), spec).fill(keys, paths, extractor))


def _dask_runs(keys, paths, params, seed, scratch: Path, n_workers: int, shard_size: int, repeats: int) -> list[float]:
    from distributed import Client, LocalCluster

    from defectflow.distributed.featurize_dask import _worker_extractor, featurize_on_dask
    from defectflow.params import ExecutorParams

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(n_workers)
            client.run(_worker_extractor, params, seed)  # build the backbone on every worker first
        executor = ExecutorParams(kind="address", address=cluster.scheduler_address, shard_size=shard_size)

        def work() -> int:
            featurize_on_dask(executor, _fresh(scratch / f"dask-{n_workers}"), keys, paths, params, seed,
                              progress=False)
            return len(keys)

        return rate_runs(work, repeats, warmup=False)


def write_markdown(rows: list[Result], info: dict, out: Path) -> Path:
    from defectflow.atomic import write_text

    lines = [f"# Dask featurization scaling — {datetime.now(UTC):%Y-%m-%d}", "",
             f"Machine: {info['cpu_model']}, {info['cores']} cores ({info['usable_cores']} usable), "
             f"load average at start {info.get('load_average')} and at end {info.get('load_average_at_end')} "
             "(the machine is shared: absolute rates move with load; ratios are measured in the same run).",
             f"Workload: {rows[0].params}.", "",
             "| path | img/s (median) | runs | vs 1 worker |", "|---|---|---|---|"]
    for row in rows:
        ratio = f"{row.ratio:.2f}×" if row.ratio else ""
        lines.append(f"| {row.name} | {row.median:.1f} | {', '.join(f'{r:.1f}' for r in row.runs)} | {ratio} |")
    lines += ["", *(f"- {row.name}: {row.note}" for row in rows if row.note), ""]
    path = out / f"dask-{datetime.now(UTC):%Y-%m-%d}.md"
    write_text(path, "\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    from bench import machine
    from bench.images import ImageSet

    p = argparse.ArgumentParser(prog="python -m bench.dask_scaling", description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=DEFAULTS["images"])
    p.add_argument("--image-size", type=int, default=DEFAULTS["image_size"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("results"))
    args = p.parse_args(argv)
    info = machine.describe("cpu")
    info["load_average"] = machine.load_average()
    cfg = {**DEFAULTS, "images": args.images, "image_size": args.image_size}
    with tempfile.TemporaryDirectory(prefix="defectflow-dask-bench-") as tmp:
        paths = ImageSet(Path(tmp) / "images", 256, 7).paths(args.images, "jpeg")
        rows = measure(paths, cfg, Path(tmp) / "stores", args.repeats, 7)
    info["load_average_at_end"] = machine.load_average()
    path = write_markdown(rows, info, args.out)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
