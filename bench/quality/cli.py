"""The options every ELPV benchmark shares: which cells, which params, where the report goes."""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"


def quality_parser(module: str, doc: str, *, stem: str, seeds: str = "0,1,2",
                   set_help: str = "params override (e.g. train.n_folds=3)") -> argparse.ArgumentParser:
    """An argument parser for `python -m <module>` with the shared options; `stem` names the default report."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.splitlines()[0])
    p.add_argument("--seeds", default=seeds, help="module shuffles for `unseen` (the first also orders `random`)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N cells (smoke runs)")
    p.add_argument("--module-size", type=int, default=60, help="ELPV: consecutive cells per board (a module has 60)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="base params file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=set_help)
    p.add_argument("--scratch", type=Path, default=Path("work/quality"), help="images, data folders, caches, workdirs")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and Markdown report")
    p.add_argument("--stem", default=None, help=f"report file name without extension (default {stem})")
    return p
