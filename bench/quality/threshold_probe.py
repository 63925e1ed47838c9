"""`python -m bench.quality.threshold_probe`: which threshold rule keeps its fail recall on the next window?

On ELPV's time split every model so far misses the 0.95 fail-recall target on some later fold at a
threshold chosen on the earlier folds (the shipped rule: 0.53–0.68 on fold 4 across the quality
benchmark's variants). Before building another rule into `evaluate`, this probe measures the
candidates a plant could run, on the pipeline's own time-split CV (`training.stage.cross_validate`,
params.yaml `train`) of a feature-probe candidate's cached features. Fold k's threshold comes
only from what was known before fold k:

  past_<method>     the shipped `evaluation.forward.forward_points`: folds < k pooled, for each
                    `evaluate` method (empirical, conformal, lower_bound)
  past_per_camera   params.yaml's method, one threshold per `camera_id` from that camera's earlier
                    fails (a camera without any flags everything)
  past_worst_fold   params.yaml's method on each earlier fold alone, the lowest of those thresholds (the
                    worst fold decides, instead of the pooled folds)
  previous_model    a plant that ships the newest fold model instead of refitting: fold k is scored by
                    fold k-1's model at the threshold from that same model's predictions on fold k-1
  flag_share        a batch rule: flag the top share of fold k's images that the earlier folds needed
                    (each fold's own share at its own threshold, the largest); a service scoring one
                    image at a time cannot apply it
  in_sample         fold k's own empirical threshold at the target, chosen on fold k: not a rule, the
                    review reduction this fold would allow if its scores were known in advance

and, to tell a drifting score scale from a drifting image population, the carry table: every fold
model's own threshold (chosen on its own fold) applied to that same model's scores of each later fold.

Writes bench/results/threshold-probe-<date>.{json,md} (or --stem).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from bench import machine
from bench.quality import elpv
from bench.quality.cli import quality_parser
from bench.quality.feature_probe import CANDIDATES, arranged, features, header
from bench.quality.protocols import parse_protocols
from bench.results_file import write_result
from defectflow.evaluation.forward import forward_points, rule_target
from defectflow.evaluation.metrics import THRESHOLD_METHODS, auc, measure_at, recall_threshold
from defectflow.params import EvaluateParams, GateParams, Params, TrainParams
from defectflow.training.splits import time_split_folds
from defectflow.training.stage import cross_validate


def scored_ahead(meta: pd.DataFrame, X: np.ndarray, y: np.ndarray, train: TrainParams, seed: int) -> pd.DataFrame:
    """Every fold model's scores of its own test block and of every later block, from one pipeline CV.

    Each fold keeps its training window and its model (the pipeline's `cross_validate`, seeded, so
    the same booster as a plain CV run); only its test rows are extended to the end of the data, which
    no training window contains. Columns: the CV's out-of-fold frame plus `block` (the fold whose
    test block a row belongs to); rows with block == fold are the ordinary out-of-fold predictions.
    """
    folds = time_split_folds(meta["captured_at"], meta["board_id"], y, n_folds=train.n_folds,
                             gap_days=train.gap_days, min_train=train.min_train, min_test=train.min_test)
    block = np.zeros(len(y), int)  # 0: the first block, never tested
    for f in folds:
        block[f.test_idx] = f.index
    ahead = [replace(f, test_idx=np.flatnonzero(block >= f.index)) for f in folds]
    oof, _ = cross_validate(meta.assign(block=block), X, y, ahead, train, seed)
    return oof


def point(y: np.ndarray, flagged: np.ndarray) -> dict:
    """What flagging `flagged` for review does on one fold: fail recall, share of images left without
    review, missed fails."""
    return {"fail_recall": round(float(flagged[y == 1].mean()), 4),
            "review_reduction": round(float((~flagged).mean()), 4),
            "missed_fails": int((~flagged[y == 1]).sum()), "n_fail": int(y.sum())}


def rule_threshold(part: pd.DataFrame, ev: EvaluateParams, method: str | None = None) -> float:
    """The `evaluate` rule's threshold (params.yaml's method unless `method`) on `part`'s predictions;
    0 (flag everything) when `part` has no fail to calibrate on."""
    if not part["y"].any():
        return 0.0
    return recall_threshold(part["y"].to_numpy(), part["p_fail"].to_numpy(),
                            rule_target(ev.target_fail_recall, ev.recall_margin), method or ev.threshold_method,
                            ev.recall_confidence)


def own_thresholds(ahead: pd.DataFrame, ev: EvaluateParams) -> dict[int, float]:
    """Each fold model's threshold chosen on its own fold's out-of-fold predictions."""
    oof = ahead[ahead["block"] == ahead["fold"]]
    return {int(fold): rule_threshold(part, ev) for fold, part in oof.groupby("fold")}


def rule_points(ahead: pd.DataFrame, ev: EvaluateParams) -> dict[str, list[dict]]:
    """Rule name → one record per fold k ≥ 2 (fold, fail_recall, review_reduction, missed_fails, n_fail)."""
    oof = ahead[ahead["block"] == ahead["fold"]]
    own = own_thresholds(ahead, ev)
    rules: dict[str, list[dict]] = {}
    for method in THRESHOLD_METHODS:
        rules[f"past_{method}"] = [
            {"fold": r["fold"], **{k: r[k] for k in ("fail_recall", "review_reduction", "missed_fails", "n_fail")}}
            for r in forward_points(oof, ev.target_fail_recall, method, ev.recall_margin, ev.recall_confidence)]
    folds = sorted(oof["fold"].unique())
    for k in folds[1:]:
        past, now = oof[oof["fold"] < k], oof[oof["fold"] == k]
        if not past["y"].any() or not now["y"].any():
            continue  # as forward_points: no fail to calibrate on, or none to measure recall on
        y, p = now["y"].to_numpy(), now["p_fail"].to_numpy()
        per_camera = np.zeros(len(now), bool)
        for camera, part in now.groupby("camera_id"):
            per_camera[(now["camera_id"] == camera).to_numpy()] = part["p_fail"].to_numpy() >= rule_threshold(
                past[past["camera_id"] == camera], ev)
        rules.setdefault("past_per_camera", []).append({"fold": int(k), **point(y, per_camera)})
        earlier = [j for j in folds if j < k]
        worst = min(own[j] for j in earlier)
        rules.setdefault("past_worst_fold", []).append({"fold": int(k), **point(y, p >= worst)})
        previous = ahead[(ahead["fold"] == k - 1) & (ahead["block"] == k)]
        rules.setdefault("previous_model", []).append(
            {"fold": int(k), **point(previous["y"].to_numpy(), previous["p_fail"].to_numpy() >= own[k - 1])})
        share = max(float((oof.loc[oof["fold"] == j, "p_fail"] >= own[j]).mean()) for j in earlier)
        top = np.zeros(len(p), bool)
        top[np.argsort(-p, kind="stable")[:int(np.ceil(share * len(p)))]] = True
        rules.setdefault("flag_share", []).append({"fold": int(k), **point(y, top)})
        rules.setdefault("in_sample", []).append(
            {"fold": int(k), **point(y, p >= rule_threshold(now, ev, "empirical"))})
    return rules


def carry(ahead: pd.DataFrame, ev: EvaluateParams) -> list[dict]:
    """Each fold model's own-fold threshold and the fail recall it realizes on every later block."""
    rows = []
    for fold, t in own_thresholds(ahead, ev).items():
        part = ahead[ahead["fold"] == fold]
        later = {int(b): round(measure_at(g["y"].to_numpy(), g["p_fail"].to_numpy(), t).fail_recall, 4)
                 for b, g in part[part["block"] > fold].groupby("block") if g["y"].any()}
        rows.append({"fold": fold, "threshold": round(t, 6), "recall_later": later})
    return rows


def training_table(cells: elpv.Cells, captured: pd.Series, boards: pd.Series) -> tuple[pd.DataFrame, np.ndarray]:
    """The cells as the pipeline's training table: its meta columns sorted by capture time (as
    `load_training_table` sorts them), and the cell index of each row."""
    meta = pd.DataFrame({"path": cells.paths, "sha256": cells.paths, "captured_at": captured,
                         "board_id": boards, "camera_id": cells.types, "label": cells.labels})
    order = np.argsort(meta["captured_at"].to_numpy(), kind="stable")
    return meta.iloc[order].reset_index(drop=True), order


def probe_markdown(result: dict) -> str:
    ev = result["evaluate"]
    floor = ev["target_fail_recall"] - result["recall_tolerance"]
    lines = ["# Which threshold rule keeps its fail recall on the next window? (ELPV)", "",
             f"Machine: **{machine.summary_line(result['machine'])}**; {result['elapsed_s']} s. "
             f"Features: `{result['features']}` (feature probe cache); LightGBM and folds from params.yaml "
             f"(`cross_validate`, {result['n']} cells). Target fail recall {ev['target_fail_recall']}, "
             f"method `{ev['threshold_method']}` (confidence {ev['recall_confidence']}) where a rule uses "
             f"one; a fold passes at recall ≥ {floor:.2f} (`gate.recall_tolerance`). "
             "Each cell: realized fail recall / review reduction (missed fails).", "",
             f"Command: `{result['command']}`", ""]
    for name, protocol in result["protocols"].items():
        folds = [r["fold"] for r in next(iter(protocol["rules"].values()))]
        lines += [f"## {name} (fold AUCs {' / '.join(f'{a:.3f}' for a in protocol['fold_auc'])})", "",
                  "| rule | " + " | ".join(f"fold {f}" for f in folds) + " | every fold ≥ floor |",
                  "|---|" + "---|" * (len(folds) + 1)]
        for rule, points in protocol["rules"].items():
            cells = [f"{r['fail_recall']:.2f} / {r['review_reduction']:.2f} ({r['missed_fails']})" for r in points]
            ok = all(r["fail_recall"] >= floor - 1e-9 for r in points)
            lines.append(f"| {rule} | " + " | ".join(cells) + f" | {'yes' if ok else 'no'} |")
        lines += ["", "Carry: each fold model's own-fold threshold, fail recall on each later block "
                  "(same model, data it never trained on):", "",
                  "| model of fold | threshold | recall on later blocks |", "|---|---|---|"]
        for r in protocol["carry"]:
            later = ", ".join(f"block {b}: {v:.2f}" for b, v in r["recall_later"].items()) or "–"
            lines.append(f"| {r['fold']} | {r['threshold']:.3f} | {later} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None, progress: Callable[[str], None] = print) -> int:
    p = quality_parser("bench.quality.threshold_probe", __doc__, stem="threshold-probe-<date>")
    p.add_argument("--features", default="lite0_300", help="feature-probe candidate whose cached features to use")
    p.add_argument("--protocols", default="time,unseen", help="comma-separated: time, unseen")
    args = p.parse_args(argv)
    by_name = {c.name: c for c in CANDIDATES}
    if args.features not in by_name:
        raise SystemExit(f"unknown features {args.features!r}; choose from {', '.join(by_name)}")
    params = Params.load(args.params, args.overrides)
    train, ev = params.section("train", TrainParams), params.section("evaluate", EvaluateParams)
    tolerance = params.section("gate", GateParams).recall_tolerance
    started = time.perf_counter()
    cells = elpv.materialize(args.scratch / "elpv", args.limit, args.module_size)
    y = (cells.labels == "fail").astype(np.int8)
    cache = args.scratch / "feature-probe"
    cache.mkdir(parents=True, exist_ok=True)
    X, _ = features(by_name[args.features], cells, cache)
    protocols = parse_protocols(args.protocols.split(","), [int(s) for s in args.seeds.split(",")])
    out = {}
    for protocol in protocols:
        meta, order = training_table(cells, *arranged(protocol, cells))
        ahead = scored_ahead(meta, X[order], y[order], train, params.seed)
        oof = ahead[ahead["block"] == ahead["fold"]]
        out[protocol.name] = {
            "fold_auc": [round(auc(g["y"].to_numpy(), g["p_fail"].to_numpy()), 4) for _, g in oof.groupby("fold")],
            "rules": rule_points(ahead, ev), "carry": carry(ahead, ev)}
        progress(f"{protocol.name}: {out[protocol.name]['fold_auc']}")
    result = {**header("threshold_probe", args, cells, started), "features": args.features,
              "evaluate": ev.__dict__, "recall_tolerance": tolerance, "protocols": out}
    markdown = probe_markdown(result)
    write_result(args.out, args.stem or f"threshold-probe-{result['date']}", result, markdown)
    progress(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
