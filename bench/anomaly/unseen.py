"""The novelty rule on defect types nobody labelled: hide some defect types (their images are
labelled `pass` everywhere, as an unknown new defect would be), train with time-split CV, and
count on the future folds how many of those images the classifier flags and how many only the
novelty rule sends to review, and what the rule costs in review share.

    python -m bench.anomaly.unseen --data DIR --workdir W [--hide contamination,scratch] [--set ...]
                                   [--out bench/results/anomaly-unseen.json]

W: a featurized workdir of DIR (anomaly on); it is not modified (a scratch copy is trained).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

from bench.machine import describe


def main(argv: list[str] | None = None) -> None:
    from defectflow.evaluation.stage import evaluate
    from defectflow.params import AnomalyParams, EvaluateParams, GateParams, Params, TrainParams
    from defectflow.training.stage import train
    from defectflow.workdir import Workdir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--hide", default="contamination,scratch")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", type=Path, default=Path("bench/results/anomaly-unseen.json"))
    args = p.parse_args(argv)
    hidden = args.hide.split(",")
    truth = pd.read_csv(args.data / "labels.csv")[["image", "defect"]].rename(columns={"image": "path"})
    params = Params.load(None, args.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        work = Workdir(tmp)
        for name in ("features.parquet", "features.json"):
            shutil.copy(args.workdir / name, work.root / name)
        (work.root / "feature_store").symlink_to((args.workdir / "feature_store").resolve())
        manifest = pd.read_parquet(args.workdir / "manifest.parquet").merge(truth, on="path", how="left")
        manifest.loc[manifest["defect"].isin(hidden), "label"] = "pass"
        manifest.drop(columns=["defect"]).to_parquet(work.manifest, index=False)
        train(work, params.section("train", TrainParams), params.seed, anomaly=params.section("anomaly", AnomalyParams))
        metrics = evaluate(work, params.section("evaluate", EvaluateParams), params.section("gate", GateParams))
        oof = pd.read_parquet(work.oof_predictions).merge(truth, on="path", how="left")
    flagged = oof["p_fail"].to_numpy() >= metrics["threshold"]
    novel = oof["novel"].to_numpy(bool)
    unseen = oof["defect"].isin(hidden).to_numpy()
    result = {
        "command": "python -m bench.anomaly.unseen " + " ".join(sys.argv[1:] if argv is None else argv),
        "hidden_defect_types": hidden, "n_oof": int(len(oof)), "n_unseen_defects": int(unseen.sum()),
        "unseen_caught_by_classifier": int((unseen & flagged).sum()),
        "unseen_caught_only_by_novelty": int((unseen & novel & ~flagged).sum()),
        "unseen_missed": int((unseen & ~flagged & ~novel).sum()),
        "review_share_classifier": round(float(flagged.mean()), 4),
        "review_share_with_novelty": round(float((flagged | novel).mean()), 4),
        "novelty_flags_on_good_images": int((novel & ~flagged & oof["defect"].isna().to_numpy()).sum()),
        "mean_auc_on_known_labels": metrics["mean_auc"], "threshold": metrics["threshold"],
        "novelty": metrics["novelty"], "machine": describe("cpu"),
    }
    print(json.dumps({k: v for k, v in result.items() if k not in ("novelty", "machine")}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
