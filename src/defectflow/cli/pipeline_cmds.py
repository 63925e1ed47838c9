"""`defectflow featurize | train | evaluate | register | pipeline`: each stage alone, or all of them.

The stage commands are built from the declarations in defectflow.stages (`validate` has its own
module, cli/validate_cmd.py, for its report).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from defectflow.cli.common import add_run_args, emit, load_params, resolve_dirs
from defectflow.errors import DataFolderMissingError, GateFailedError
from defectflow.stages import Stage, StageRun, stage

COMMAND_STAGES = ("featurize", "train", "evaluate", "register")


def stage_command(declared: Stage) -> Callable[[argparse.Namespace], int]:
    """The command function that runs `declared` alone and prints its summary."""

    def command(args: argparse.Namespace) -> int:
        params = load_params(args)
        data, workdir = resolve_dirs(args, params)
        run = StageRun(data if declared.needs_data else None, workdir, params)
        result = declared.run(run)
        emit(args, result, _human(declared, result, run))
        if declared.name == "register" and not result["gate_passed"]:
            raise GateFailedError("gate failed, the model was not registered; see metrics/cv.json for the reasons")
        return 0  # a failed gate is reported by evaluate and enforced by register/pipeline

    return command


def _human(declared: Stage, result: dict, run: StageRun) -> str:
    if declared.name == "evaluate":
        from defectflow.cli.report import render_run

        return render_run({"evaluate": result, "workdir": str(run.workdir.root)})
    return declared.describe(result)


def cmd_pipeline(args: argparse.Namespace) -> int:
    from defectflow.cli.report import render_run
    from defectflow.pipeline import run_pipeline

    params = load_params(args)
    data, workdir = resolve_dirs(args, params)
    if data is None:
        raise DataFolderMissingError()
    try:
        summary = run_pipeline(data, workdir, params, progress=not args.json)
    except GateFailedError as exc:
        if exc.summary:
            emit(args, exc.summary, render_run(exc.summary))
        raise
    emit(args, summary, render_run(summary))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    commands = [(name, stage_command(stage(name)), stage(name).needs_data, stage(name).help)
                for name in COMMAND_STAGES]
    commands.append(("pipeline", cmd_pipeline, True, "validate → featurize → train → evaluate → register"))
    for name, func, needs_data, help_text in commands:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_run_args(p, data=needs_data)
        p.set_defaults(func=func)
