"""`python -m bench.quality.head_probe`: does the fine-tuned head's own fail logit help?

Issue 10 item 2 asks whether the fine-tuned head's logit should join the LightGBM features.
Each fold of each protocol fine-tunes the backbone on its own training window only (the
product's `features.finetune.finetune`, recipe from params.yaml `featurize.finetune`), computes
the fine-tuned features of the window and of the test block at `featurize.image_size`, and the
head's logit on them (logit = head(pooled features)), then compares on the test block:

  lightgbm         LightGBM on the fine-tuned features (what `featurize.mode=finetune` ships)
  head             the fine-tuned head's logit alone
  rank_mean        the mean of the two scores' ranks within the test block (no fitted weight)
  lightgbm+logit   LightGBM with the logit as one more feature. The logit of a training row is
                   in-sample (the head was fitted on it), so this variant shows the stacking leak
                   a naive build-in would have; a fair version needs cross-fitted logits (k more
                   fine-tunes per window).

Windows under `finetune.min_rows` are skipped (the product keeps frozen features there).
Fine-tuned weights and heads are cached under --scratch by the product's content key.
Writes bench/results/head-probe-<date>.{json,md} (or --stem).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from bench import machine
from bench.quality import elpv
from bench.quality.cli import quality_parser
from bench.quality.feature_probe import arranged, lightgbm_fit, protocol_folds
from bench.quality.protocols import parse_protocols
from bench.results_file import write_result
from defectflow import atomic
from defectflow.evaluation.metrics import auc
from defectflow.hashing import sha256_file
from defectflow.params import FeaturizeParams, Params, TrainParams

SCORES = ("lightgbm", "head", "rank_mean", "lightgbm+logit")


def tuned_fold(cells: elpv.Cells, sha: list[str], y: np.ndarray, captured: pd.Series, boards: pd.Series, fold,
               featurize: FeaturizeParams, seed: int, cache: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(features, head logits) for the fold's training rows then test rows, and the fine-tune record."""
    import torch

    from defectflow.features.backbones import build_backbone
    from defectflow.features.extract import FeatureExtractor
    from defectflow.features.finetune import LabelledRows, finetune, weights_key

    ft = featurize.finetune_params()
    tr = fold.train_idx
    rows = LabelledRows(sha256=[sha[i] for i in tr], sources=[str(cells.root / cells.paths[i]) for i in tr],
                        y=y[tr], captured_at=captured.iloc[tr].reset_index(drop=True),
                        board_id=boards.iloc[tr].reset_index(drop=True))
    key = weights_key(featurize.backbone, featurize.weights, featurize.image_size, ft, seed, rows)
    path = cache / f"{featurize.backbone}-{key}.pth"
    head_path = path.with_suffix(".head.pth")
    started = time.perf_counter()
    if not (path.is_file() and head_path.is_file()):
        tuned = finetune(featurize.backbone, featurize.weights, featurize.image_size, ft, seed, rows,
                         featurize.device)
        with atomic.atomic_path(path, suffix=".pth") as tmp:
            torch.save(tuned.state, tmp)
        with atomic.atomic_path(head_path, suffix=".pth") as tmp:
            torch.save({"head": tuned.head, "history": tuned.history}, tmp)
    finetune_s = time.perf_counter() - started
    saved = torch.load(head_path, weights_only=True)
    model, spec = build_backbone(featurize.backbone, str(path), featurize.image_size, seed)
    needed = np.r_[tr, fold.test_idx]
    X = FeatureExtractor(model, spec, featurize.device, featurize.batch_size, featurize.num_workers).transform(
        [str(cells.root / cells.paths[i]) for i in needed])
    w, b = saved["head"]["weight"].numpy().ravel(), float(saved["head"]["bias"].numpy().ravel()[0])
    return X, X @ w + b, {"finetune_s": round(finetune_s, 1), "history": saved["history"]}


def fold_scores(X: np.ndarray, logit: np.ndarray, y_train: np.ndarray, y_test: np.ndarray, fit) -> dict[str, float]:
    n = len(y_train)
    lgbm = fit(X[:n], y_train)(X[n:])
    stacked = fit(np.c_[X[:n], logit[:n]], y_train)(np.c_[X[n:], logit[n:]])
    ranks = (rankdata(lgbm) + rankdata(logit[n:])) / 2
    scores = {"lightgbm": lgbm, "head": logit[n:], "rank_mean": ranks, "lightgbm+logit": stacked}
    return {k: round(auc(y_test, v), 4) for k, v in scores.items()}


def to_markdown(result: dict) -> str:
    ft = result["finetune"]
    lines = ["# The fine-tuned head's logit as a score or a feature (ELPV)", "",
             f"Machine: **{machine.summary_line(result['machine'])}**; {result['elapsed_s']} s. "
             f"Command: `{result['command']}`. {result['n']} cells; fine-tuned per fold on its training window "
             f"({ft['epochs']} epochs, {ft['image_size'] or result['image_size']} px training, features at "
             f"{result['image_size']} px); LightGBM from params.yaml, all `n_estimators` rounds.", "",
             "| protocol | fold | rows fine-tuned | fine-tune s | " + " | ".join(SCORES) + " |",
             "|---|---|---|---|" + "---|" * len(SCORES)]
    for p, folds in result["protocols"].items():
        for f in folds:
            cells = [f"{f['auc'][s]:.3f}" for s in SCORES] if "auc" in f else ["frozen (under min_rows)"] + [""] * 3
            lines.append(f"| {p} | {f['fold']} | {f['rows']} | {f.get('finetune_s', '')} | " + " | ".join(cells) + " |")
        tuned = [f for f in folds if "auc" in f]
        if tuned:
            lines.append(f"| {p} | mean of fine-tuned folds | | | "
                         + " | ".join(f"**{np.mean([f['auc'][s] for f in tuned]):.3f}**" for s in SCORES) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = quality_parser("bench.quality.head_probe", __doc__, seeds="0", stem="head-probe-<date>")
    p.add_argument("--protocols", default="time", help="comma-separated: time, unseen, random")
    args = p.parse_args(argv)
    params = Params.load(args.params, args.overrides)
    train, featurize = params.section("train", TrainParams), params.section("featurize", FeaturizeParams)
    started = time.perf_counter()
    cells = elpv.materialize(args.scratch / "elpv", args.limit, args.module_size)
    y = (cells.labels == "fail").astype(np.int8)
    sha = [sha256_file(cells.root / q) for q in cells.paths]
    protocols = parse_protocols([x for x in args.protocols.split(",") if x], [int(s) for s in args.seeds.split(",")])
    cache = args.scratch / "head-probe"
    fit = lightgbm_fit(train, params.seed, 1280)
    out: dict[str, list[dict]] = {}
    for protocol in protocols:
        captured, boards = arranged(protocol, cells)
        folds = protocol_folds(cells, [protocol], train, y)[protocol.name]
        proto = protocol.name
        out[proto] = []
        for f in folds:
            record: dict = {"fold": f.index, "rows": len(f.train_idx)}
            if len(f.train_idx) >= featurize.finetune_params().min_rows:
                X, logit, info = tuned_fold(cells, sha, y, captured, boards, f, featurize, params.seed, cache)
                record |= info | {"auc": fold_scores(X, logit, y[f.train_idx], y[f.test_idx], fit)}
            out[proto].append(record)
            print(proto, record.get("fold"), record.get("auc"), flush=True)
    result = {"benchmark": "head_probe", "command": "python -m bench.quality.head_probe " + " ".join(sys.argv[1:]),
              "machine": machine.describe(featurize.device if featurize.device != "auto" else "cpu"),
              "n": len(cells), "image_size": featurize.image_size,
              "finetune": featurize.finetune_params().__dict__, "protocols": out,
              "elapsed_s": round(time.perf_counter() - started, 1), "date": f"{datetime.now(UTC):%Y-%m-%d}"}
    write_result(args.out, args.stem or f"head-probe-{result['date']}", result, to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
