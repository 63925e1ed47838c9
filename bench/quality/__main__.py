"""`python -m bench.quality [--variants a,b] [--protocols time,unseen,random] [--seeds 0,1,2] [--limit N]`.

Converts ELPV into the data contract (once, under --scratch), runs validate → featurize →
train → evaluate for every (variant, protocol) with one shared feature store, and writes
<out>/quality-<device>-<date>.{json,md} (or <out>/<--stem>.{json,md}).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.quality.cli import quality_parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = quality_parser("bench.quality", __doc__, stem="quality-<device>-<date>",
                       set_help="params override applied to every run (after the variant's own)")
    p.add_argument("--variants", default="baseline", help="comma-separated names from bench/quality/variants.py")
    p.add_argument("--protocols", default="time,unseen,random", help="comma-separated: time, unseen, random")
    p.add_argument("--data", type=Path, default=None,
                   help="your own data folder (labels.csv of the data contract) instead of ELPV; board_id = module")
    p.add_argument("--resume", action="store_true",
                   help="keep finished runs under --scratch whose data and params match (re-run evaluate only)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> tuple[Path, Path]:
    from bench import machine
    from bench.quality import elpv, report
    from bench.quality.protocols import parse_protocols
    from bench.quality.runner import run_one, training_key
    from bench.quality.variants import overrides_for
    from defectflow.params import EvaluateParams, Params

    started = time.perf_counter()
    variants = overrides_for([v for v in args.variants.split(",") if v])
    protocols = parse_protocols([p for p in args.protocols.split(",") if p], [int(s) for s in args.seeds.split(",")])
    scratch = args.scratch
    if args.data is None:
        cells = elpv.materialize(scratch / "elpv", args.limit, args.module_size)
        name = "elpv-dataset==1.0.0.post1"
    else:
        cells, name = elpv.from_data_folder(args.data, args.limit), str(args.data.resolve())
    dataset = {"name": name, "n": len(cells), "n_fail": int((cells.labels == "fail").sum()),
               "n_boards": int(len(set(cells.modules))), "module_size": args.module_size if args.data is None else None,
               "limit": args.limit}
    info = machine.describe("auto")
    runs, devices = [], set()
    for protocol in protocols:
        order, boards = protocol.arrange(cells.modules)
        data_dir = elpv.write_data_folder(cells, scratch / "data" / protocol.name, order, boards)
        trained: dict[str, Path] = {}  # training_key → the run that trained with those params
        for name, _, overrides in variants:
            params = Params.load(args.params, [*overrides, *args.overrides])
            log(args, f"{name} / {protocol.name}")
            workdir, key = scratch / "runs" / name / protocol.name, training_key(params, protocol.name, dataset)
            figures = run_one(data_dir, workdir, scratch / "feature_store", params, key, progress=not args.quiet,
                              trained_in=None if args.resume and (workdir / "bench-run.json").exists()
                              else trained.get(key), resume=args.resume)
            trained.setdefault(key, workdir)
            devices.add(figures["device"])
            runs.append({"variant": name, "protocol": protocol.name, "family": protocol.family, "seed": protocol.seed,
                         **figures})
            log(args, f"  mean AUC {figures['mean_auc']:.4f}  folds {figures['fold_auc']}  "
                      f"forward recall {[f['fail_recall'] for f in figures['forward']]}")
    info["load_average_at_end"] = machine.load_average()
    base = Params.load(args.params, args.overrides).section("evaluate", EvaluateParams)
    result = {
        "benchmark": "quality", "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.quality " + " ".join(shlex.quote(a) for a in (sys.argv[1:] or [])),
        "machine": info, "device": ", ".join(sorted(d for d in devices if not d.startswith("n/a"))) or "cached",
        "dataset": dataset,
        "target_fail_recall": base.target_fail_recall,
        "variants": {n: {"description": d, "overrides": o} for n, d, o in variants},
        "runs": runs, "summary": report.summarize(runs, variants),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    kind = "gpu" if "cuda" in result["device"] else "cpu"
    stem = args.stem or f"quality-{kind}-{datetime.now(UTC):%Y-%m-%d}"
    return report.write(result, args.out, stem)


def log(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    json_path, md_path = run(args)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
