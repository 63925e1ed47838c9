"""`python -m bench.quality.shift_probe`: can the model follow ELPV's shift between time windows?

The feature probe showed frozen features separate cells inside known modules (random split
≈ 0.91) but not across time (≈ 0.71–0.75): later windows hold other cell types and brighter
modules. This probe asks two questions a plant can act on, on the feature probe's cached
features (`--features`, several are concatenated) and the same protocols and LightGBM:

* **Follow the camera's recent images** (no labels needed): every image's features minus a
  per-camera mean. `center_train` uses the training window's mean for both sides (the rule
  `camera_norm` measured); `center_causal` centres each scored image on a running mean of the
  same camera's images scored so far in the test window, the training mean counting as
  `--prior` images (what a scoring service could keep); `center_window` uses the whole test
  window's mean — transductive, an upper bound for any running statistic, not a deployable rule.
* **Trust uncertain labels less**: ELPV's annotators gave each cell a defect probability of 0,
  1/3, 2/3 or 1; `uncertain_w` trains with weight `--uncertain-weight` on the 1/3 and 2/3 cells
  (they still count fully in every AUC). The data contract has no such column today; this
  measures whether one would pay.
* **Tell the model the camera**: the camera as a feature (`camera_feature`) or one model per
  camera (`camera_models`).

Writes bench/results/shift-probe-<date>.{json,md} (or --stem).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.quality import elpv
from bench.quality.cli import quality_parser
from bench.quality.feature_probe import (
    CANDIDATES,
    arranged,
    features,
    header,
    lightgbm_fit,
    protocol_folds,
    summarise_unseen,
    to_markdown,
)
from bench.quality.protocols import parse_protocols
from bench.results_file import write_result
from defectflow.evaluation.metrics import auc
from defectflow.params import Params, TrainParams


@dataclass(frozen=True)
class Context:
    """What one fold knows: camera per cell, capture position per cell, training weight per cell."""

    cameras: np.ndarray
    position: np.ndarray
    weights: np.ndarray


def camera_means(X: np.ndarray, cameras: np.ndarray) -> dict:
    return {c: X[cameras == c].mean(0) for c in np.unique(cameras)}


def centred(X_train: np.ndarray, X_test: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray, ctx: Context,
            rule: str, prior: float) -> tuple[np.ndarray, np.ndarray]:
    """Both sides minus a per-camera mean: training rows always use their window's mean; test rows
    the training mean (`train`), a prior-weighted running mean in capture order (`causal`) or the
    whole test window's mean (`window`)."""
    cam_train, cam_test = ctx.cameras[train_idx], ctx.cameras[test_idx]
    means = camera_means(X_train, cam_train)
    overall = X_train.mean(0)
    out_train = X_train - np.stack([means[c] for c in cam_train])
    base = np.stack([means.get(c, overall) for c in cam_test])
    if rule == "train":
        return out_train, X_test - base
    if rule == "window":
        window = camera_means(X_test, cam_test)
        return out_train, X_test - np.stack([window[c] for c in cam_test])
    if rule != "causal":
        raise ValueError(f"unknown centring rule {rule!r}")
    out_test = np.empty_like(X_test)
    sums: dict = {}
    counts: dict = {}
    for j in np.argsort(ctx.position[test_idx], kind="stable"):
        c = cam_test[j]
        sums[c] = sums.get(c, prior * base[j]) + X_test[j]
        counts[c] = counts.get(c, prior) + 1
        out_test[j] = X_test[j] - sums[c] / counts[c]
    return out_train, out_test


@dataclass(frozen=True)
class Rule:
    name: str
    what: str
    centring: str | None = None
    weighted: bool = False
    camera: str | None = None  # feature: the camera as one more column | models: one LightGBM per camera


RULES = [
    Rule("plain", "the features as they are (the feature probe's figure)"),
    Rule("center_train", "per-camera mean of the training window subtracted on both sides", "train"),
    Rule("center_causal", "test images centred on a running per-camera mean of the test window so far "
         "(training mean as prior)", "causal"),
    Rule("center_window", "test images centred on the whole test window's per-camera mean (transductive bound)",
         "window"),
    Rule("uncertain_w", "uncertain cells (defect probability 1/3, 2/3) trained with reduced weight", weighted=True),
    Rule("center_causal_uncertain_w", "both of the above", "causal", weighted=True),
    Rule("camera_feature", "the camera (cell type) as one more feature", camera="feature"),
    Rule("camera_models", "one LightGBM per camera (the pooled model where a camera's window has one class)",
         camera="models"),
]


def rule_aucs(rule: Rule, X: np.ndarray, y: np.ndarray, folds, ctx: Context, fit: Callable, prior: float) -> list:
    out = []
    for f in folds:
        a, b = X[f.train_idx], X[f.test_idx]
        if rule.centring:
            a, b = centred(a, b, f.train_idx, f.test_idx, ctx, rule.centring, prior)
        weight = ctx.weights[f.train_idx] if rule.weighted else None
        cam_train, cam_test = ctx.cameras[f.train_idx], ctx.cameras[f.test_idx]
        if rule.camera == "feature":
            kinds = np.unique(ctx.cameras)
            a, b = np.c_[a, np.searchsorted(kinds, cam_train)], np.c_[b, np.searchsorted(kinds, cam_test)]
        y_train = y[f.train_idx]
        scores = fit(a, y_train, weight)(b)
        if rule.camera == "models":
            for c in np.unique(cam_test):
                mine = cam_train == c
                if len(np.unique(y_train[mine])) == 2:
                    scores[cam_test == c] = fit(a[mine], y_train[mine], None)(b[cam_test == c])
        out.append(round(auc(y[f.test_idx], scores), 4))
    return out


def shift_markdown(result: dict) -> str:
    """The feature probe's table, one row per rule, titled with the features and the rules' settings."""
    return to_markdown(result, title=(
        f"Following the shift on ELPV: camera centring, label confidence, the camera (features "
        f"`{result['features']}`; causal prior {result['prior']:g} images, uncertain-cell weight "
        f"{result['uncertain_weight']:g} on {result['n_uncertain']} cells)"))


def main(argv: list[str] | None = None) -> int:
    p = quality_parser("bench.quality.shift_probe", __doc__, stem="shift-probe-<date>")
    p.add_argument("--features", default="lite0_300", help="feature-probe candidates, concatenated (comma list)")
    p.add_argument("--rules", default=",".join(r.name for r in RULES))
    p.add_argument("--prior", type=float, default=20.0, help="images the training mean counts as (center_causal)")
    p.add_argument("--uncertain-weight", type=float, default=0.3, help="training weight of uncertain cells")
    args = p.parse_args(argv)
    by_name = {c.name: c for c in CANDIDATES}
    unknown = [n for n in args.features.split(",") if n not in by_name]
    rules = [r for r in RULES if r.name in args.rules.split(",")]
    if unknown or not rules:
        raise SystemExit(f"unknown features {unknown} or no known rule in {args.rules!r}; features: "
                         f"{', '.join(by_name)}; rules: {', '.join(r.name for r in RULES)}")
    params = Params.load(args.params, args.overrides)
    train = params.section("train", TrainParams)
    started = time.perf_counter()
    cells = elpv.materialize(args.scratch / "elpv", args.limit, args.module_size)
    y = (cells.labels == "fail").astype(np.int8)
    uncertain = elpv.uncertain(len(cells))
    cache = args.scratch / "feature-probe"
    cache.mkdir(parents=True, exist_ok=True)
    parts = [features(by_name[n], cells, cache) for n in args.features.split(",")]
    X = np.concatenate([x for x, _ in parts], axis=1)
    fit = lightgbm_fit(train, params.seed, X.shape[1])
    protocols = parse_protocols(["time", "unseen", "random"], [int(s) for s in args.seeds.split(",")])
    folds = protocol_folds(cells, protocols, train, y)
    weights = np.where(uncertain, args.uncertain_weight, 1.0)
    contexts = {p.name: Context(cells.types, arranged(p, cells)[0].to_numpy(), weights) for p in protocols}
    rows = []
    for rule in rules:
        aucs = {name: rule_aucs(rule, X, y, fs, contexts[name], fit, args.prior) for name, fs in folds.items()}
        rows.append({"name": rule.name, "what": rule.what, "dim": X.shape[1],
                     "feature_s": round(sum(s for _, s in parts), 1), "folds": summarise_unseen(aucs)})
        print(rule.name, {k: round(float(np.mean(v)), 3) for k, v in rows[-1]["folds"].items()}, flush=True)
    result = {**header("shift_probe", args, cells, started), "features": args.features,
              "prior": args.prior, "uncertain_weight": args.uncertain_weight,
              "n_uncertain": int(uncertain.sum()), "protocols": rows[0]["folds"], "candidates": rows}
    markdown = shift_markdown(result)
    write_result(args.out, args.stem or f"shift-probe-{result['date']}", result, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
