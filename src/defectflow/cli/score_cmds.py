"""Batch scoring and the review loop: `defectflow score`, `defectflow dashboard`, `defectflow export-labels`."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectflow.cli.common import add_run_args, emit, load_params, resolve_dirs
from defectflow.errors import ConfigError
from defectflow.params import AzureParams, Params, ScoreParams, ValidateParams
from defectflow.redact import redact_url
from defectflow.workdir import Workdir

DEFAULT_DASHBOARD_PORT = 8088


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score every image not yet scored by a model version into the results database",
                       description="Scores the images of --input (a folder, or azure://<container>/<prefix>) with "
                                   "--model and writes one row per image to --results. Images this model version "
                                   "already scored are skipped, so re-runs write nothing new and an interrupted run "
                                   "resumes (results are committed after each batch).")
    add_run_args(p, data=False)
    p.add_argument("--input", help="folder of images (labels.csv optional, for captured_at/board_id/camera_id) "
                                   "or azure://<container>/<prefix> (default: params data.dir)")
    p.add_argument("--model", help="models:/<name>@<alias>, models:/<name>/<version>, or an ONNX bundle folder "
                                   "(default: params score.model)")
    p.add_argument("--results", help="SQLAlchemy URL of the results database (default: params score.results_url, "
                                     "$DEFECTFLOW_RESULTS_URL, else sqlite:///<workdir>/results.db)")
    p.add_argument("--batch-size", type=int, help="images per model call (default: params score.batch_size)")
    p.set_defaults(func=run_score)

    p = sub.add_parser("dashboard", help="serve the operator dashboard on its own (the serving app also mounts it)")
    add_run_args(p, data=False)
    p.add_argument("--results", help="results database URL (as for `score`)")
    p.add_argument("--images", type=Path, action="append", default=[], metavar="DIR",
                   help="folder thumbnails may be read from "
                        "(repeatable; default: params data.dir + dashboard.image_roots)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_DASHBOARD_PORT, help=f"port (default {DEFAULT_DASHBOARD_PORT})")
    p.set_defaults(func=run_dashboard)

    p = sub.add_parser("export-labels", help="write operator reviews as labels.csv rows for the next training run",
                       description="Exports the latest operator review of each reviewed image in the data contract's "
                                   "labels.csv format (image,label,captured_at,board_id,camera_id).")
    add_run_args(p, data=False)
    p.add_argument("--results", help="results database URL (as for `score`)")
    p.add_argument("--out", type=Path, required=True, help="labels.csv to write (atomically)")
    p.add_argument("--source",
                   help="input folder / blob prefix the images belong to (needed when reviews span several)")
    p.add_argument("--only-corrections", action="store_true",
                   help="only images where the operator disagreed with the model (default: every reviewed image)")
    p.set_defaults(func=run_export_labels)


def _results_url(args: argparse.Namespace, params: Params, workdir: Workdir) -> str:
    from defectflow.scoring.results import resolve_results_url

    return resolve_results_url(args.results or params.section("score", ScoreParams).results_url, workdir)


def run_score(args: argparse.Namespace) -> int:
    from defectflow.dashboard.app import blob_cache_dir
    from defectflow.registry.client import Registry
    from defectflow.scoring.batch import score

    params = load_params(args)
    _, workdir = resolve_dirs(args, params)
    section = params.section("score", ScoreParams)
    source = args.input or params.data.dir
    if not source:
        raise ConfigError("no input: pass --input DIR|azure://<container>/<prefix> or set data.dir in params")
    model = args.model or section.model
    registry = Registry.from_params(params, workdir)
    if model.startswith("models:"):
        registry.reachable()
    summary = score(
        str(source), model, _results_url(args, params, workdir),
        batch_size=args.batch_size or section.batch_size, blob_cache=blob_cache_dir(section, workdir),
        tracking_uri=registry.tracking_uri,
        validate=params.section("validate", ValidateParams), azure=params.section("azure", AzureParams),
    )
    unreadable = f", {len(summary['unreadable'])} unreadable (see warnings)" if summary["unreadable"] else ""
    emit(args, summary,
         f"{summary['model_name']} v{summary['model_version']}: scored {summary['scored']} of {summary['images']} "
         f"images ({summary['already_scored']} already scored, {summary['duplicates']} duplicate contents{unreadable}) "
         f"→ {summary['results']}")
    return 0


def run_dashboard(args: argparse.Namespace) -> int:
    import uvicorn

    from defectflow.dashboard.app import create_dashboard_app, dashboard_config

    params = load_params(args)
    _, workdir = resolve_dirs(args, params)
    config = dashboard_config(params, workdir, results_url=args.results, image_roots=args.images)
    print(f"dashboard on http://{args.host}:{args.port}/dashboard (results {redact_url(config.results_url)})")
    uvicorn.run(create_dashboard_app(config), host=args.host, port=args.port, log_level="info")
    return 0


def run_export_labels(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from defectflow.dashboard.reviews import export_labels
    from defectflow.scoring.results import open_results

    params = load_params(args)
    _, workdir = resolve_dirs(args, params)
    engine = open_results(_results_url(args, params, workdir))
    try:
        with Session(engine) as session:
            summary = export_labels(session, args.out, source=args.source, only_corrections=args.only_corrections)
    finally:
        engine.dispose()
    note = (f"; {summary.without_captured_at} rows lack captured_at "
            "(validation will quarantine them until it is filled in)"
            if summary.without_captured_at else "")
    emit(args, {**summary.__dict__, "out": str(args.out)},
         f"wrote {summary.rows} labels ({summary.corrections} corrections) from {summary.source} to {args.out}{note}")
    return 0

