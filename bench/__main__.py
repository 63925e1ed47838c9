"""`python -m bench [--profile cpu|gpu|smoke] [--cases a,b,...] [--set key=json] [--out DIR]`.

Runs the cases of a profile (bench/config.json), then writes <out>/<device>-<date>.json and .md.
Needs only torch, torchvision, numpy and Pillow plus `defectflow` importable (PYTHONPATH=src
on a machine without the package installed); cases needing more are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

CONFIG = Path(__file__).with_name("config.json")
RESULTS = Path(__file__).with_name("results")
# The cases that start processes (c: torch loader workers, memory: a child per size) run before the
# first OpenVINO case: forking this process once OpenVINO's thread pool runs segfaulted it (2 of 2
# full runs; features/extract.py, _worker_start_method), and a worker start-up from a forkserver
# instead would distort c's timing.
ALL_CASES = ("c", "memory", "ab", "d", "e", "f", "profile")


def load_profile(name: str, overrides: list[str], config: Path = CONFIG) -> dict:
    profiles = json.loads(config.read_text())
    if name not in profiles or name.startswith("_"):
        known = ", ".join(k for k in profiles if not k.startswith("_"))
        raise SystemExit(f"unknown profile {name!r}; choose one of {known}")
    cfg = dict(profiles[name])
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key=value "
                             "(value as JSON, e.g. repeats=5 or backbones='[\"resnet50\"]')")
        try:
            cfg[key] = json.loads(value)
        except json.JSONDecodeError:
            cfg[key] = value  # a bare string such as device=cuda:1
    return cfg


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="cpu", help="a profile of bench/config.json (cpu, gpu, smoke)")
    p.add_argument("--cases", default=",".join(ALL_CASES),
                   help=f"comma-separated subset of {','.join(ALL_CASES)} (ab = naive + model alone + end to end)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and Markdown report")
    p.add_argument("--scratch", type=Path, default=None, help="folder for test images and stores (default: a temp dir)")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> tuple[Path, Path]:
    from bench import machine, report, targets
    from bench.cases import booster, edge, featurize, finetune, incremental, memory
    from bench.cases.context import Context
    from bench.images import ImageSet

    cfg = load_profile(args.profile, args.overrides)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(ALL_CASES)
    if unknown:
        raise SystemExit(f"unknown cases {sorted(unknown)}; choose from {','.join(ALL_CASES)}")
    started = time.perf_counter()
    info = machine.describe(cfg["device"])
    with tempfile.TemporaryDirectory(prefix="defectflow-bench-") as tmp:
        scratch = Path(args.scratch or tmp)
        ctx = Context(cfg, scratch, ImageSet(scratch / "images", int(cfg["source_size"]), int(cfg["seed"])),
                      progress=not args.quiet)
        rows, breakdown = [], None
        runners = {"ab": featurize.run, "c": incremental.run, "d": booster.run, "e": edge.run, "f": finetune.run,
                   "memory": memory.run}
        for case in cases:
            if case == "profile":
                ctx.log("where the time goes")
                breakdown = featurize.where_time_goes(ctx)
            else:
                rows += runners[case](ctx)
    info["load_average_at_end"] = machine.load_average()
    result = report.build(info, cfg, args.profile, rows, breakdown, targets.evaluate(rows, cfg),
                          time.perf_counter() - started)
    device_kind = "gpu" if cfg["device"].startswith("cuda") else "cpu"
    stem = f"{device_kind}-{datetime.now(UTC):%Y-%m-%d}" if args.profile != "smoke" else "smoke"
    if tuple(cases) != ALL_CASES:  # a partial run must not overwrite the full report of the day
        stem += "-" + "-".join(cases)
    return report.write(result, args.out, stem)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    json_path, md_path = run(args)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
