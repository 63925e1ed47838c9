"""Do features from each engine give the booster the same decisions as torch features?

`python -m bench.engine_parity --reference WORKDIR_TORCH --other WORKDIR_ORT --other WORKDIR_OV ...`
takes work directories of the same data featurized with different engines (featurize.engine=…),
scores every image's features with the booster trained on the reference (torch) features at the
evaluate stage's operating threshold, and writes bench/results/engine-parity-<date>.{json,md}:
feature differences, max |Δ fail probability| and the share of identical decisions.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bench import machine
from bench.results_file import write_result

RESULTS = Path(__file__).with_name("results")


def _features(workdir: Path) -> tuple[pd.DataFrame, str, float | None]:
    """Feature matrix by sha256, the engine that made it, and the featurize stage's images/s."""
    frame = pd.read_parquet(workdir / "features.parquet").set_index("sha256").sort_index()
    run = json.loads((workdir / "features.json").read_text())["run"]
    device = run["device"] if "(" in run["device"] else f"torch ({run['device']})"  # torch reports the bare device
    return frame, device, run["images_per_s"]


def compare(reference: Path, others: list[Path]) -> dict:
    import lightgbm as lgb

    spec = json.loads((reference / "model" / "spec.json").read_text())
    booster = lgb.Booster(model_file=str(reference / "model" / "booster.txt"))
    threshold = float(json.loads((reference / "metrics" / "cv.json").read_text())["threshold"])
    ref, ref_device, ref_rate = _features(reference)
    p_ref = booster.predict(ref.to_numpy(), num_iteration=spec["num_boost_round"])
    rows = []
    for other in others:
        feats, device, rate = _features(other)
        if not feats.index.equals(ref.index):
            raise SystemExit(f"{other} holds other images than {reference}")
        a, b = feats.to_numpy(np.float64), ref.to_numpy(np.float64)
        rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
        p = booster.predict(feats.to_numpy(), num_iteration=spec["num_boost_round"])
        same = (p >= threshold) == (p_ref >= threshold)
        rows.append({"engine": device, "workdir": str(other), "images": int(len(feats)), "featurize_images_per_s": rate,
                     "feature_max_abs_diff": float(np.abs(a - b).max()),
                     "feature_rel_l2_median": float(np.median(rel)), "feature_rel_l2_max": float(rel.max()),
                     "p_fail_max_abs_diff": float(np.abs(p - p_ref).max()),
                     "same_decision_share": float(same.mean()), "different_decisions": int((~same).sum())})
    return {"reference": {"engine": ref_device, "workdir": str(reference), "threshold": threshold,
                          "featurize_images_per_s": ref_rate,
                          "num_boost_round": spec["num_boost_round"],
                          "featurizer_id": spec["featurizer"]["featurizer_id"]},
            "machine": machine.describe("cpu"), "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "rows": rows}


def to_markdown(result: dict) -> str:
    ref = result["reference"]
    lines = [f"# Engine parity: booster decisions on features from each engine vs {ref['engine']}", "",
             f"Booster trained on the reference features ({ref['featurizer_id']}, {ref['num_boost_round']} rounds), "
             f"operating threshold {ref['threshold']:.4f}; {result['created_at']}. The featurize stage ran at "
             f"{ref['featurize_images_per_s']} img/s with the reference engine (separate runs, not interleaved: "
             "see the bench for fair ratios).", "",
             "| engine | images | featurize img/s | max abs Δ feature | rel L2 median / max | max abs Δp "
             "| same decision |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['engine']} | {r['images']} | {r['featurize_images_per_s']} "
                     f"| {r['feature_max_abs_diff']:.1e} | "
                     f"{r['feature_rel_l2_median']:.1e} / {r['feature_rel_l2_max']:.1e} "
                     f"| {r['p_fail_max_abs_diff']:.1e} | "
                     f"{r['same_decision_share']:.2%} ({r['different_decisions']} differ) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engine_parity", description=__doc__.splitlines()[0])
    p.add_argument("--reference", type=Path, required=True,
                   help="workdir featurized (and trained, evaluated) with torch")
    p.add_argument("--other", type=Path, action="append", required=True, help="workdir featurized with another engine")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    result = compare(args.reference, args.other)
    write_result(args.out, f"engine-parity-{datetime.now(UTC):%Y-%m-%d}", result, to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
