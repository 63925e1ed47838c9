"""Time-split AUC with and without the anomaly score as a LightGBM feature, and the novelty
rule's catches and review cost, on one featurized workdir (train + evaluate twice).

    python -m bench.anomaly.auc --workdir W [--set train.n_folds=3 ...] [--out bench/results/anomaly-auc.json]

W must have been through `defectflow validate` and `defectflow featurize` (anomaly on).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.machine import describe


def main(argv: list[str] | None = None) -> None:
    from defectflow.evaluation.stage import evaluate
    from defectflow.params import AnomalyParams, EvaluateParams, GateParams, Params, TrainParams
    from defectflow.training.stage import train
    from defectflow.workdir import Workdir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", type=Path, default=Path("bench/results/anomaly-auc.json"))
    args = p.parse_args(argv)
    workdir = Workdir(args.workdir)
    runs = {}
    for as_feature in (False, True):
        params = Params.load(None, [*args.overrides, f"anomaly.as_feature={str(as_feature).lower()}"])
        train(workdir, params.section("train", TrainParams), params.seed,
              anomaly=params.section("anomaly", AnomalyParams))
        metrics = evaluate(workdir, params.section("evaluate", EvaluateParams), params.section("gate", GateParams))
        runs["with_anomaly_feature" if as_feature else "without_anomaly_feature"] = {
            "fold_aucs": [f["auc"] for f in metrics["folds"]], "mean_auc": metrics["mean_auc"],
            "review_reduction": metrics["review_reduction"], "fail_recall": metrics["fail_recall"],
            "novelty": metrics["novelty"]}
        print(as_feature, metrics["mean_auc"], metrics["novelty"]["overall"], flush=True)
    data = json.loads((workdir.root / "features.json").read_text())["spec"]
    out = {"command": "python -m bench.anomaly.auc " + " ".join(sys.argv[1:] if argv is None else argv),
           "featurizer": {k: data[k] for k in ("name", "image_size", "weights_id")},
           "anomaly": dict(Params.load(None, args.overrides).tree.get("anomaly", {})),
           "machine": describe("cpu"), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
