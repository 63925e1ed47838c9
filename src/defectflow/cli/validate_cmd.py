"""`defectflow validate`: check a data folder and write the manifest and validation reports."""

from __future__ import annotations

import argparse
from typing import Any

from defectflow.cli.common import add_run_args, emit, load_params, resolve_dirs
from defectflow.errors import DataFolderMissingError
from defectflow.params import ValidateParams


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "validate",
        help="check images + labels.csv, quarantine bad rows, write manifest.parquet and reports",
        description="Check every row of DATA/labels.csv and write WORKDIR/manifest.parquet, "
                    "WORKDIR/reports/validation.json and the Great Expectations report. Exits 3 when "
                    "more than validate.max_bad_share of the rows are quarantined.",
    )
    add_run_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from defectflow.validation.stage import validate

    params = load_params(args)
    data_dir, workdir = resolve_dirs(args, params)
    if data_dir is None:
        raise DataFolderMissingError()
    report = validate(data_dir, workdir, params.section("validate", ValidateParams))
    summary = {k: report[k] for k in ("counts", "share_bad", "by_reason", "outputs")}
    emit(args, summary, format_summary(report))
    return 0


def format_summary(report: dict[str, Any]) -> str:
    """A few lines for people: counts by status, then by reason, then where the reports are."""
    c = report["counts"]
    lines = [
        f"validated {c['total']} rows: {c['ok']} ok ({c['labelled']} labelled, {c['unlabelled']} unlabelled), "
        f"{c['quarantined']} quarantined ({report['share_bad']:.1%})",
    ]
    lines += [f"  {reason:<30} {n}" for reason, n in report["by_reason"].items()]
    lines += [f"manifest: {report['outputs']['manifest']}",
              f"report:   {report['outputs']['report']}",
              f"GX page:  {report['outputs']['gx_html']}"]
    return "\n".join(lines)
