"""`defectflow featurize | train | evaluate | register | pipeline`: each stage alone, or all of them."""

from __future__ import annotations

import argparse

from defectflow.cli.common import add_run_args, emit, load_params, resolve_dirs
from defectflow.errors import DataFolderMissingError, GateFailedError
from defectflow.params import EvaluateParams, ExecutorParams, FeaturizeParams, GateParams, TrainParams
from defectflow.params import AnomalyParams


def _need_data(data):
    if data is None:
        raise DataFolderMissingError()
    return data


def cmd_featurize(args: argparse.Namespace) -> int:
    from defectflow.features.stage import featurize

    params = load_params(args)
    data, workdir = resolve_dirs(args, params)
    summary = featurize(_need_data(data), workdir, params.section("featurize", FeaturizeParams), params.seed,
                        executor=params.section("executor", ExecutorParams),
                        anomaly=params.section("anomaly", AnomalyParams))
    emit(args, summary, f"featurize: {summary['n_images']} images, {summary['n_computed']} computed "
                        f"({summary['images_per_s']} img/s on {summary['device']}), {summary['n_cached']} cached")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from defectflow.training.stage import train

    params = load_params(args)
    _, workdir = resolve_dirs(args, params)
    summary = train(workdir, params.section("train", TrainParams), params.seed,
                    executor=params.section("executor", ExecutorParams),
                    anomaly=params.section("anomaly", AnomalyParams))
    emit(args, summary, f"train: {summary['n_labelled']} labelled images, {len(summary['folds'])} folds, "
                        f"final model {summary['final_rounds']} rounds → {summary['model_dir']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from defectflow.cli.report import render_run
    from defectflow.evaluation.stage import evaluate

    params = load_params(args)
    _, workdir = resolve_dirs(args, params)
    metrics = evaluate(workdir, params.section("evaluate", EvaluateParams), params.section("gate", GateParams))
    emit(args, metrics, render_run({"evaluate": metrics, "workdir": str(workdir.root)}))
    return 0  # a failed gate is reported here and enforced by register/pipeline


def cmd_register(args: argparse.Namespace) -> int:
    from defectflow.registry.register import register_model

    params = load_params(args)
    data, workdir = resolve_dirs(args, params)
    result = register_model(_need_data(data), workdir, params)
    emit(args, result, f"register: run {result['run_id']} in {result['tracking_uri']}; "
                       + (f"{result['model_name']} version {result['version']} (alias challenger)"
                          if result["version"] else "gate failed, no model version registered"))
    if not result["gate_passed"]:
        raise GateFailedError("gate failed, the model was not registered; see metrics/cv.json for the reasons")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from defectflow.cli.report import render_run
    from defectflow.pipeline import run_pipeline

    params = load_params(args)
    data, workdir = resolve_dirs(args, params)
    try:
        summary = run_pipeline(_need_data(data), workdir, params, progress=not args.json)
    except GateFailedError as exc:
        if exc.summary:
            emit(args, exc.summary, render_run(exc.summary))
        raise
    emit(args, summary, render_run(summary))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    for name, func, needs_data, help_text in (
        ("featurize", cmd_featurize, True, "compute CNN features for new images (content-addressed cache)"),
        ("train", cmd_train, False, "time-split cross-validation + final LightGBM model"),
        ("evaluate", cmd_evaluate, False, "fold AUCs, threshold, review reduction, plots, gate verdict"),
        ("register", cmd_register, True, "log the run to MLflow; register the model if the gate passed"),
        ("pipeline", cmd_pipeline, True, "validate → featurize → train → evaluate → register"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_run_args(p, data=needs_data)
        p.set_defaults(func=func)
