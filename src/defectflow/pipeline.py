"""The whole training pipeline, stage after stage, as plain function calls (the CLI and the
Prefect flow both drive these same functions; the order and the stages are `stages.STAGES`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defectflow.errors import GateFailedError
from defectflow.evaluation.gate import GateVerdict
from defectflow.params import Params
from defectflow.stages import STAGES, StageRun, check_registry
from defectflow.workdir import Workdir


def run_pipeline(data_dir: Path, workdir: Workdir, params: Params, progress: bool = True) -> dict:
    """validate → featurize → train → evaluate → register; raises GateFailedError (after logging
    the run, so the evidence is kept) when the gate fails."""
    run = StageRun(data_dir, workdir, params, progress)
    check_registry(run)  # the registry is the last stage's target: find out it is down before any work
    summary: dict[str, Any] = {"data_dir": str(data_dir), "workdir": str(workdir.root)}
    for stage in STAGES:
        summary[stage.name] = stage.run(run)
    enforce_gate(summary["evaluate"], summary)
    return summary


def gate_verdict(metrics: dict[str, Any]) -> GateVerdict:
    """The gate verdict inside the evaluate stage's result (metrics/cv.json keeps it as a plain dict)."""
    return GateVerdict(**metrics["gate"])


def enforce_gate(metrics: dict[str, Any], summary: dict[str, Any] | None = None) -> None:
    """Raise GateFailedError (exit 4) with the gate's reasons when the evaluate stage's gate failed."""
    verdict = gate_verdict(metrics)
    if not verdict.passed:
        raise GateFailedError("gate failed, the model was not registered: " + "; ".join(verdict.reasons), summary)
