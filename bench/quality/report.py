"""The quality report: JSON with every run's figures, Markdown with the ablation and per-run tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.machine import summary_line
from bench.results_file import write_result

FAMILIES = ("time", "unseen", "random")


def summarize(runs: list[dict], variants: list[tuple[str, str, list[str]]]) -> list[dict]:
    """One row per variant: mean AUC per protocol family (unseen: mean over seeds), the time
    split's forward recall, and the CPU/wall seconds the variant cost over all its runs."""
    rows = []
    for name, description, overrides in variants:
        mine = [r for r in runs if r["variant"] == name]
        row: dict = {"variant": name, "description": description, "overrides": overrides}
        for family in FAMILIES:
            fam = [r for r in mine if r["family"] == family]
            if fam:
                means = [r["mean_auc"] for r in fam]
                row[family] = {"mean_auc": round(float(np.mean(means)), 4), "min_run": round(min(means), 4),
                               "max_run": round(max(means), 4), "runs": len(fam),
                               "forward_recall": [[f["fail_recall"] for f in r["forward"]] for r in fam],
                               "forward_review_reduction": [[f["review_reduction"] for f in r["forward"]]
                                                            for r in fam],
                               "gate_passed": [r["gate"]["passed"] for r in fam]}
        steps = mine[0]["cpu_s"] if mine else {}
        row["cpu_s"] = {step: round(sum(r["cpu_s"][step] for r in mine), 1) for step in steps}
        row["wall_s"] = round(sum(sum(r["wall_s"].values()) for r in mine), 1)
        rows.append(row)
    return rows


def _auc_cell(entry: dict | None) -> str:
    if entry is None:
        return "–"
    if entry["runs"] == 1:
        return f"{entry['mean_auc']:.3f}"
    return f"{entry['mean_auc']:.3f} ({entry['min_run']:.3f}–{entry['max_run']:.3f}, {entry['runs']} seeds)"


def _forward_cell(entry: dict | None) -> str:
    if entry is None or not entry["forward_recall"][0]:
        return "–"
    recall = " / ".join(f"{v:.2f}" for v in entry["forward_recall"][0])
    reduction = np.mean(entry["forward_review_reduction"][0])
    return f"{recall} (no review {reduction:.0%})"


def to_markdown(report: dict) -> str:
    m = report["machine"]
    ds = report["dataset"]
    lines = [
        "# defectflow model quality on real images", "",
        f"Machine: **{summary_line(m)}**; device `{report['device']}`; load average at start "
        f"{m['load_average_at_start']}, at end {m.get('load_average_at_end')}; total {report['elapsed_s']} s.", "",
        (f"Data: ELPV (`elpv-dataset`), {ds['n']} cells ({ds['n_fail']} fail: defect probability ≥ 0.5), "
         f"board = {ds['module_size']} consecutive cells, camera = cell type." if ds.get("module_size") else
         f"Data: `{ds['name']}`, {ds['n']} labelled images ({ds['n_fail']} fail) on {ds['n_boards']} boards.")
        + f" Command: `{report['command']}`.", "",
        f"Target fail recall {report['target_fail_recall']}; forward recall = realized recall on fold k at the "
        "threshold chosen from folds < k only.", "",
        "## Ablation", "",
        "| variant | time split mean AUC | unseen modules mean AUC | random (leaky reference) | "
        "time split forward recall, folds 2… | CPU s featurize | CPU s train | wall s (all runs) |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for row in report["summary"]:
        lines.append(f"| **{row['variant']}**: {row['description']} | {_auc_cell(row.get('time'))} | "
                     f"{_auc_cell(row.get('unseen'))} | {_auc_cell(row.get('random'))} | "
                     f"{_forward_cell(row.get('time'))} | {row['cpu_s'].get('featurize', 0):.0f} | "
                     f"{row['cpu_s'].get('train', 0):.0f} | {row['wall_s']:.0f} |")
    lines += ["", "Featurize CPU time is 0 where the content-addressed store already held the features "
              "(the same images under another protocol or variant). Variants that change only `evaluate`/`gate` "
              "params re-run only the evaluate stage on the models trained for the first such variant.", ""]
    for run in report["runs"]:
        lines += _run_section(run)
    return "\n".join(lines)


def _run_section(run: dict) -> list[str]:
    forward = {f["fold"]: f for f in run["forward"]}
    lines = [f"## {run['variant']} / {run['protocol']}", "",
             f"mean AUC **{run['mean_auc']:.3f}**; gate {'passed' if run['gate']['passed'] else 'FAILED'} "
             f"({'; '.join(run['gate']['reasons'])}); device {run['device']}; wall {sum(run['wall_s'].values()):.0f} s"
             f"{' (stage times recorded by the earlier invocation that trained it)' if run.get('reused') else ''}.",
             "", "| fold | AUC | 95 % CI | rounds (early stop) | forward threshold | forward recall | missed | "
             "no review | at best (in-sample) |", "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for k, (a, ci) in enumerate(zip(run["fold_auc"], run["fold_auc_ci95"], strict=True), start=1):
        f = forward.get(k)
        # a run resumed from a report older than the in-sample ceiling has none
        best = f"{f['ceiling_review_reduction']:.1%}" if f and "ceiling_review_reduction" in f else "–"
        fwd = (f"{f['threshold']:.3f} | {f['fail_recall']:.3f} | {f['missed_fails']}/{f['n_fail']} | "
               f"{f['review_reduction']:.1%} | {best}") if f else "– | – | – | – | –"
        lines.append(f"| {k} | {a:.3f} | {ci[0]:.3f}–{ci[1]:.3f} | {run['rounds_used'][k - 1]} "
                     f"({run['best_iteration'][k - 1]}) | {fwd} |")
    cams = ", ".join(f"{c['camera_id']} {c['auc']:.3f}" if c["auc"] is not None else f"{c['camera_id']} –"
                     for c in run["cameras"])
    lines += ["", f"Per-camera AUC (pooled out-of-fold): {cams}.", ""]
    if (novelty := run.get("novelty")) is not None:
        n = novelty["overall"]
        lines += [f"Novelty rule (anomaly score above the training window's pass-image quantile), all test folds: "
                  f"catches {n['fails_caught_novelty']}/{n['n_fail']} fails, {n['fails_caught_only_by_novelty']} of "
                  f"them missed by the classifier (which catches {n['fails_caught_classifier']} at the in-sample "
                  f"threshold); review share {n['review_share_classifier']:.1%} → "
                  f"{n['review_share_with_novelty']:.1%}.", ""]
    return lines


def write(report: dict, out_dir: Path, stem: str) -> tuple[Path, Path]:
    return write_result(out_dir, stem, report, to_markdown(report))
