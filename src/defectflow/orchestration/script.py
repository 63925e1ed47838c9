"""Run a flow file as a script with the CLI's --data / --workdir / --params / --set arguments."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def run_as_script(flow: Callable, doc: str) -> None:
    """Parse the arguments, run `flow` once and exit 0 when its final state is Completed."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data")
    parser.add_argument("--workdir")
    parser.add_argument("--params")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    state = flow(args.data, args.workdir, args.params, args.overrides, return_state=True)
    sys.exit(0 if state.is_completed() else 1)
