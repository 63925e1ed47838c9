"""The batch-scoring flow: score new images of a folder or blob prefix into the results database.

Thin on purpose: all logic is `defectflow.scoring.batch.score` (the same function as
`defectflow score`). Scoring is idempotent and commits per batch, so the task's retries
resume where a failed attempt stopped instead of starting over.

Run it once:  python flows/scoring.py [--input DIR|azure://container/prefix] [--model URI] [--results URL]
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import argparse
import json
import sys

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from defectflow.params import AzureParams, Params, RegisterParams, ScoreParams, ValidateParams
from defectflow.workdir import Workdir


@task(name="score-batch", retries=2, retry_delay_seconds=[10, 60])
def score_task(input_spec: str, model_uri: str, results_url: str, params: Params, workdir: Workdir) -> dict:
    from defectflow.dashboard.app import blob_cache_dir
    from defectflow.registry.tracking import tracking_uri
    from defectflow.scoring.batch import score

    section = params.section("score", ScoreParams)
    return score(input_spec, model_uri, results_url, batch_size=section.batch_size,
                 blob_cache=blob_cache_dir(section, workdir),
                 tracking_uri=tracking_uri(params.section("register", RegisterParams), workdir),
                 validate=params.section("validate", ValidateParams), azure=params.section("azure", AzureParams))


@flow(name="defectflow-scoring", log_prints=True)
def scoring_flow(input_spec: str | None = None, model_uri: str | None = None, results_url: str | None = None,
                 workdir: str | None = None, params_file: str | None = None,
                 overrides: list[str] | None = None) -> dict:
    """Score every image of `input_spec` not yet scored by the model version `model_uri` resolves to."""
    from defectflow.scoring.results import resolve_results_url

    logger = get_run_logger()
    params = Params.load(params_file, overrides or [])
    section = params.section("score", ScoreParams)
    wd = Workdir(params.data.work_dir(workdir))
    source = input_spec or str(params.data.data_dir())
    results = resolve_results_url(results_url or section.results_url, wd)
    summary = score_task(source, model_uri or section.model, results, params, wd)
    logger.info("%s v%s: scored %d new of %d images (%d already scored, %d unreadable) → %s",
                summary["model_name"], summary["model_version"], summary["scored"], summary["images"],
                summary["already_scored"], len(summary["unreadable"]), summary["results"])
    create_markdown_artifact(
        key="batch-scoring",
        markdown=(f"# Batch scoring\n\n| source | model | images | new | already scored | unreadable |\n"
                  f"|---|---|---:|---:|---:|---:|\n| {summary['source']} | {summary['model_name']} "
                  f"v{summary['model_version']} | {summary['images']} | {summary['scored']} | "
                  f"{summary['already_scored']} | {len(summary['unreadable'])} |\n"),
        description="New scores written to the results database",
    )
    return summary


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="Run the batch-scoring flow once.")
    cli.add_argument("--input", dest="input_spec")
    cli.add_argument("--model", dest="model_uri")
    cli.add_argument("--results", dest="results_url")
    cli.add_argument("--workdir")
    cli.add_argument("--params", dest="params_file")
    args = cli.parse_args()
    print(json.dumps(scoring_flow(**vars(args)), indent=2, default=str))
    sys.exit(0)
