"""The `defectflow` command line: one subcommand per stage plus the whole pipeline.

Each module in COMMAND_MODULES exposes `register(subparsers)`. Heavy libraries are imported
inside the command functions so `defectflow --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from defectflow.errors import DefectflowError, ExitCode

COMMAND_MODULES = [
    "defectflow.cli.pipeline_cmds",
    "defectflow.cli.synth_cmd",
    "defectflow.cli.ingest_cmd",
    "defectflow.cli.validate_cmd",
    "defectflow.cli.ops_cmds",
    "defectflow.cli.score_cmds",
    "defectflow.cli.ship_cmds",
    "defectflow.cli.explain_cmd",
    "defectflow.cli.drift_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="defectflow",
        description="Image pass/fail classification: validate → featurize → train → evaluate → register.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per HTTP request drowns the output
    try:
        return int(args.func(args) or 0)
    except DefectflowError as exc:
        print(f"defectflow {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; completed work is kept (all outputs are written atomically)", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
