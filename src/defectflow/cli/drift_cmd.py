"""`defectflow drift --data DIR --reference-until ISO`: per-camera drift of the newest images, no labels needed."""

from __future__ import annotations

import argparse

from defectflow.cli.common import add_run_args, emit, load_params, resolve_dirs
from defectflow.errors import DataFolderMissingError


def cmd_drift(args: argparse.Namespace) -> int:
    from defectflow.monitoring.drift_check import check_drift
    from defectflow.params import AlertsParams

    params = load_params(args)
    data, workdir = resolve_dirs(args, params)
    if data is None:
        raise DataFolderMissingError()
    results = check_drift(data, workdir, params, args.reference_until)
    if args.emit:
        from defectflow.orchestration.drift_events import emit_drift_events

        emit_drift_events(results, params.section("alerts", AlertsParams))
    emit(args, {"reference_until": args.reference_until, "cameras": [r.as_dict() for r in results]}, "\n".join(
        f"{r.camera_id}: {r.verdict} ({r.n_recent} recent vs {r.n_reference} reference images; "
        f"min p {min(r.p_values.values()) if r.p_values else 'n/a'})" for r in results))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("drift", help="per-camera drift of the newest images against the training window (no labels)",
                       description=__doc__.split(": ", 1)[1])
    add_run_args(p)
    p.add_argument("--reference-until", required=True, metavar="ISO",
                   help="end of the reference window (the training cutoff), e.g. 2026-10-01T00:00:00Z")
    p.add_argument("--emit", action="store_true", help="also emit the Prefect events (PREFECT_API_URL)")
    p.set_defaults(func=cmd_drift)
