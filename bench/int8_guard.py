"""Is INT8 featurization acceptable on this data? `python -m bench.int8_guard --fp32 WD --int8 WD`.

WD are two work directories of the same data taken through validate → featurize → train →
evaluate, one with fp32 features (any engine) and one with `featurize.quantization=int8`. Writes
bench/results/int8-guard-<date>.{json,md} with the fold AUCs and the verdict of
`defectflow.inference.int8_guard` (mean AUC drop ≤ 0.005 on the same folds), and exits 1 when
INT8 is refused.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from bench import machine
from bench.results_file import write_result
from defectflow.inference.int8_guard import int8_verdict

RESULTS = Path(__file__).with_name("results")


def _run(workdir: Path) -> tuple[dict, dict]:
    cv = json.loads((workdir / "metrics" / "cv.json").read_text())
    run = json.loads((workdir / "features.json").read_text())["run"]
    return cv, run


def to_markdown(result: dict) -> str:
    v = result["verdict"]
    lines = ["# INT8 featurization guard: time-split AUC on the same folds", "",
             f"fp32: {result['fp32']['featurizer_id']} on {result['fp32']['device']} ({result['fp32']['workdir']}); "
             f"int8: {result['int8']['featurizer_id']} on {result['int8']['device']} ({result['int8']['workdir']}); "
             f"{result['created_at']}.", "",
             "| fold | AUC fp32 | AUC int8 | drop |", "|---:|---:|---:|---:|"]
    lines += [f"| {f['fold']} | {f['auc_fp32']:.4f} | {f['auc_int8']:.4f} | {f['drop']:+.4f} |" for f in v["folds"]]
    lines += [f"| mean | {v['mean_auc_fp32']:.4f} | {v['mean_auc_int8']:.4f} | {v['drop']:+.4f} |", "",
              f"Verdict: **{'accepted' if v['accepted'] else 'refused'}** (mean AUC drop {v['drop']:+.4f}, "
              f"allowed ≤ {v['max_drop']})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.int8_guard", description=__doc__.splitlines()[0])
    p.add_argument("--fp32", type=Path, required=True)
    p.add_argument("--int8", type=Path, required=True)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    (cv32, run32), (cv8, run8) = _run(args.fp32), _run(args.int8)
    result = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine.describe("cpu"),
              "fp32": {"workdir": str(args.fp32), **{k: run32[k] for k in ("featurizer_id", "device", "images_per_s")}},
              "int8": {"workdir": str(args.int8), **{k: run8[k] for k in ("featurizer_id", "device", "images_per_s")}},
              "verdict": int8_verdict(cv32, cv8)}
    write_result(args.out, f"int8-guard-{datetime.now(UTC):%Y-%m-%d}", result, to_markdown(result))
    print(to_markdown(result))
    return 0 if result["verdict"]["accepted"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
