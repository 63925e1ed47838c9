"""Write a bench report as JSON (everything) and Markdown (tables people read)."""

from __future__ import annotations

import math
from pathlib import Path

from bench.machine import summary_line
from bench.timing import Result

CASE_TITLES = {
    "naive": "Naive baseline",
    "a": "(a) End-to-end featurization from files",
    "b": "(b) Model alone on preloaded tensors",
    "c": "(c) Incremental cost",
    "d": "(d) LightGBM training time vs rows",
    "e": "(e) Edge scoring: ONNX bundle vs pyfunc",
    "f": "(f) Fine-tuning: frozen blocks cached vs run every epoch",
    "memory": "Peak memory vs dataset size",
}


def build(machine: dict, cfg: dict, profile: str, rows: list[Result], breakdown: dict | None,
          targets: list[dict], elapsed_s: float) -> dict:
    return {"profile": profile, "machine": machine, "machine_summary": summary_line(machine), "config": cfg,
            "elapsed_s": round(elapsed_s, 1), "results": [r.to_dict() for r in rows], "where_time_goes": breakdown,
            "targets": targets}


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# defectflow bench: `{report['profile']}` profile",
        "",
        f"Machine: **{report['machine_summary']}**; device `{m['device']}`; Python {m['python']}, "
        f"torchvision {m['torchvision']}, Pillow {m['pillow']}; CPU flags {', '.join(m['cpu_flags']) or '–'}; "
        f"load average at start {m['load_average_at_start']}, at end {m.get('load_average_at_end')}; "
        f"total {report['elapsed_s']} s.",
        "",
        "Each value is the median of the runs listed; ratios compare medians measured in this same run.",
        "",
    ]
    by_case: dict[str, list[dict]] = {}
    for row in report["results"]:
        by_case.setdefault(row["case"], []).append(row)
    for case, title in CASE_TITLES.items():
        if case not in by_case:
            continue
        lines += [f"## {title}", "", "| case | median | unit | runs | ratio | vs | note |",
                  "|---|---:|---|---|---:|---|---|"]
        for r in by_case[case]:
            runs = ", ".join(_fmt(v) for v in r["runs"])
            ratio = f"{r['ratio']:.2f}×" if r["ratio"] is not None else "–"
            lines.append(f"| {r['name']} | {_fmt(r['median'])} | {r['unit']} | {runs} | {ratio} | "
                         f"{r['baseline'] or '–'} | {r['note']} |")
        lines.append("")
    if report["where_time_goes"]:
        wt = report["where_time_goes"]
        lines += ["## Where the time goes", "",
                  f"{wt['backbone']}, {wt['variant']}, batch {wt['batch_size']}; decode timings are one process, "
                  "single-threaded.", "", "| step | ms |", "|---|---:|"]
        for key in ("decode_resize_ms_per_image_jpeg", "decode_resize_ms_per_image_jpeg_full_decode",
                    "decode_resize_ms_per_image_png", "host_to_device_ms_per_batch", "model_ms_per_image"):
            lines.append(f"| {key.replace('_', ' ')} | {_fmt(wt[key], 3)} |")
        lines += ["", f"torch.profiler, top operators by self {wt['profiler_self_time']} time over "
                  f"{report['config']['profile_batches']} end-to-end batches:", "",
                  "| operator | calls | self ms |", "|---|---:|---:|"]
        lines += [f"| `{op['op']}` | {op['calls']} | {_fmt(op['self_ms'], 2)} |" for op in wt["top_ops"]]
        lines.append("")
    if report["targets"]:
        lines += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |" for t in report["targets"]]
        lines.append("")
    return "\n".join(lines)


def write(report: dict, out_dir: Path, stem: str) -> tuple[Path, Path]:
    from bench.results_file import write_result

    return write_result(out_dir, stem, report, to_markdown(report))
