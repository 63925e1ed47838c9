"""`defectflow synth`: render the demo dataset (synthetic PCB close-ups + labels.csv)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from defectflow.cli.common import emit
from defectflow.params import Params, SynthParams


def cmd_synth(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from defectflow.synth import generate

    overrides = list(args.overrides)
    for key, value in (("n", args.n), ("seed", args.seed), ("drift_from", args.drift_from),
                       ("drift_kind", args.drift_kind)):
        if value is not None:
            overrides.append(f"synth.{key}={value}")
    settings = dataclasses.asdict(Params.load(args.params, overrides).section("synth", SynthParams))

    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[rate]} img/s"))
    # progress goes to stderr so stdout stays clean for --json
    with Progress(*columns, console=Console(stderr=True), transient=args.json) as bar:
        task = bar.add_task("render", total=settings["n"], rate="-")

        def advance(done: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(task, completed=done, rate=f"{done / elapsed:.0f}" if elapsed > 0 else "-")

        summary = generate(args.out, progress=advance, **settings)

    labels = ", ".join(f"{k} {v}" for k, v in sorted(summary["labels"].items()))
    defects = ", ".join(f"{k} {v}" for k, v in sorted(summary["defects"].items()))
    emit(args, summary,
         f"synth: {summary['n']} images of {summary['boards']} boards → {summary['out_dir']}\n"
         f"  labels: {labels}\n  defects: {defects}\n"
         f"  cameras: {', '.join(f'{k} {v}' for k, v in sorted(summary['cameras'].items()))}\n"
         f"  captured {summary['first_captured_at']} … {summary['last_captured_at']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="render the demo dataset: synthetic circuit-board close-ups with labels.csv",
        description="Render synthetic close-ups of circuit-board components (pass, or one of several "
                    "assembly defects) with labels.csv spread over weeks; defaults come from the synth "
                    "section of params.yaml.")
    p.add_argument("--out", type=Path, required=True, help="folder to write (new, empty, or an earlier synth output)")
    p.add_argument("--n", type=int, help="number of images (synth.n)")
    p.add_argument("--seed", type=int, help="random seed (synth.seed): the same seed gives the same bytes")
    p.add_argument("--drift-from", help="ISO date from which drift is applied (synth.drift_from)")
    p.add_argument("--drift-kind", choices=("lighting", "camera"), help="kind of drift (synth.drift_kind)")
    p.add_argument("--params", type=Path, help="params file (default: ./params.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param, e.g. --set synth.defect_rate=0.2 (repeatable)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.set_defaults(func=cmd_synth)
