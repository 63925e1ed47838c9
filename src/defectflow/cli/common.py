"""Arguments shared by the stage commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from defectflow.params import Params
from defectflow.workdir import Workdir


def add_run_args(p: argparse.ArgumentParser, *, data: bool = True) -> None:
    if data:
        p.add_argument("--data", type=Path, help="data folder with images and labels.csv (default: params data.dir)")
    p.add_argument("--workdir", type=Path, help="where stage outputs go (default: params data.workdir)")
    p.add_argument("--params", type=Path, help="params file (default: ./params.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param, e.g. --set train.n_folds=3 (repeatable)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")


def load_params(args: argparse.Namespace) -> Params:
    return Params.load(args.params, args.overrides)


def resolve_dirs(args: argparse.Namespace, params: Params) -> tuple[Path | None, Workdir]:
    """--data and --workdir, else params data.dir and data.workdir; the data folder is None when neither names
    one (commands that need it raise DataFolderMissingError)."""
    data = getattr(args, "data", None) or params.data.dir
    return (Path(data) if data else None), Workdir(params.data.work_dir(args.workdir))


def emit(args: argparse.Namespace, summary: dict[str, Any], human: str) -> None:
    """Print the summary as JSON (--json) or as text for people."""
    if getattr(args, "json", False):
        json.dump(summary, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(human)
