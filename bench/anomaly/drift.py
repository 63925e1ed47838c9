"""Drift detection delay and false alarms on the synthetic drift scenario, without labels.

Per seed: 11 days of images (3 cameras); for `lighting` and `camera` the change starts on day 11,
so the recent window (drift.window_days = 1) holds the first day of changed data only; `control`
has no change. The reference window ends on day 10. A run alerts when any camera drifts.

    python -m bench.anomaly.drift [--seeds 1,2,3] [--control-seeds 1,2,3,4,5] [--n 330] [--image-size 64]
                                  [--out bench/results/anomaly-drift.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.machine import describe

START, DRIFT_FROM, REFERENCE_UNTIL = "2026-09-01", "2026-09-11", "2026-09-10T00:00:00Z"


def one_run(kind: str, seed: int, n: int, size: int, root: Path) -> dict:
    from defectflow.monitoring.drift_check import check_drift
    from defectflow.params import Params
    from defectflow.synth import generate
    from defectflow.workdir import Workdir

    data = root / f"{kind}-{seed}"
    generate(data, n, seed, image_size=size, days=11, start=START,
             drift_from=None if kind == "control" else DRIFT_FROM, drift_kind="lighting" if kind == "control" else kind)
    params = Params.load(None, [f"featurize.image_size={size}", "featurize.num_workers=0"])
    results = check_drift(data, Workdir(root / f"work-{kind}-{seed}"), params, REFERENCE_UNTIL)
    return {"kind": kind, "seed": seed, "alert": any(r.drifted for r in results),
            "cameras": {r.camera_id: {"verdict": r.verdict, "n_recent": r.n_recent, "p_values": r.p_values}
                        for r in results}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--control-seeds", default="1,2,3,4,5")
    p.add_argument("--n", type=int, default=330)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("bench/results/anomaly-drift.json"))
    args = p.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        plan = [(k, int(s)) for k in ("lighting", "camera") for s in args.seeds.split(",")]
        plan += [("control", int(s)) for s in args.control_seeds.split(",")]
        for kind, seed in plan:
            runs.append(one_run(kind, seed, args.n, args.image_size, Path(tmp)))
            print(kind, seed, runs[-1]["alert"], {c: v["verdict"] for c, v in runs[-1]["cameras"].items()}, flush=True)
    summary = {}
    for kind in ("lighting", "camera", "control"):
        mine = [r for r in runs if r["kind"] == kind]
        checks = [c for r in mine for c in r["cameras"].values() if c["verdict"] != "insufficient_data"]
        summary[kind] = {"runs": len(mine), "runs_alerting": sum(r["alert"] for r in mine),
                         "camera_checks": len(checks), "cameras_drifted": sum(c["verdict"] == "drift" for c in checks)}
    out = {"command": "python -m bench.anomaly.drift " + " ".join(sys.argv[1:] if argv is None else argv),
           "scenario": {"n": args.n, "image_size": args.image_size, "days": 11, "start": START,
                        "drift_from": DRIFT_FROM, "reference_until": REFERENCE_UNTIL, "window_days": 1.0},
           "summary": summary, "machine": describe("cpu"), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
