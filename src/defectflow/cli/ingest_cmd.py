"""`defectflow ingest`: copy new images and labels from an Azure Blob container into the data folder."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from defectflow.cli.common import emit
from defectflow.errors import ConfigError, DefectflowError, ExitCode
from defectflow.params import AzureParams, Params


class IngestIncompleteError(DefectflowError):
    """Some blobs were rejected or could not be ingested; everything else was."""

    exit_code = ExitCode.INGEST_INCOMPLETE


def cmd_ingest(args: argparse.Namespace) -> int:
    from defectflow.atomic import write_json
    from defectflow.azure.credentials import install_log_redaction
    from defectflow.azure.ingest import ingest_from_blob

    install_log_redaction()
    if not getattr(args, "verbose", False):
        # azure-core logs every HTTP request at INFO: one line per blob drowns the summary.
        logging.getLogger("azure").setLevel(logging.WARNING)
    params = Params.load(args.params, args.overrides)
    # Command-line values replace the section's directly (not via --set, whose YAML parsing would
    # turn a prefix such as "2026" into a number).
    given = {k: v for k, v in (("container", args.container), ("prefix", args.prefix),
                               ("max_workers", args.max_workers)) if v is not None}
    settings = dataclasses.replace(params.section("azure", AzureParams), **given)
    dest = args.dest or params.data.dir
    if not settings.container:
        raise ConfigError("no container: pass --container or set azure.container in params.yaml")
    if not dest:
        raise ConfigError("no destination: pass --dest or set data.dir in params.yaml")

    summary = ingest_from_blob(dest, settings.container, settings.prefix or "", settings,
                               progress=not args.no_progress and not args.json)
    if args.report:
        write_json(args.report, summary)
    emit(args, summary, _human(summary))
    problems = len(summary["rejected"]) + len(summary["failed"]) + len(summary["labels"]["rejected_rows"])
    if problems:
        raise IngestIncompleteError(
            f"{problems} item(s) not ingested (listed above{' and in ' + str(args.report) if args.report else ''}); "
            "everything else was ingested. Fix or remove those blobs upstream and re-run: the run is incremental."
        )
    return 0


def _human(s: dict[str, Any]) -> str:
    lines = [
        f"ingest {s['container']}/{s['prefix']} → {s['dest']} ({s['auth']})",
        f"  {s['downloaded']} downloaded ({s['bytes_downloaded'] / 1e6:.2f} MB, {s['files_per_s']} files/s, "
        f"{s['mb_per_s']} MB/s), {s['adopted']} adopted from disk, {s['unchanged']} unchanged, "
        f"{s['skipped_not_image']} not images",
        f"  labels.csv: {s['labels']['rows']} rows ({s['labels']['added']} added, {s['labels']['updated']} updated, "
        f"{s['labels']['pending']} waiting for their image)",
    ]
    lines += [f"  REJECTED {item['blob']!r}: {item['reason']}" for item in s["rejected"]]
    lines += [f"  FAILED {item['blob']!r}: {item['reason']}" for item in s["failed"]]
    lines += [f"  REJECTED label row {r['labels_blob']}:{r['line']} {r['image']!r}: {r['reason']}"
              for r in s["labels"]["rejected_rows"]]
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "ingest", help="copy new images + labels from an Azure Blob container into the data folder",
        description="Incremental, verified, resumable copy of the images and labels.csv blobs under a "
                    "container prefix into DEST (the folder DVC tracks). Credentials come from environment "
                    "variables only (see docs/azure.md); settings from the azure section of params.yaml.")
    p.add_argument("--container", help="blob container (azure.container)")
    p.add_argument("--prefix", help="only blobs whose names start with this (azure.prefix), e.g. line1/")
    p.add_argument("--dest", type=Path, help="destination folder (default: params data.dir)")
    p.add_argument("--max-workers", type=int, help="concurrent downloads (azure.max_workers)")
    p.add_argument("--report", type=Path, help="also write the summary as JSON here (keep it outside DEST)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--params", type=Path, help="params file (default: ./params.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param, e.g. --set azure.max_workers=4 (repeatable)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.set_defaults(func=cmd_ingest)
