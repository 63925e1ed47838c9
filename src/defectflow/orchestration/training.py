"""Plain functions behind the training flow (no Prefect here, so they are testable without a server):
resolving the run's configuration, the promotion decision and the MLflow experiment the report links to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from defectflow.errors import PromotionRefusedError
from defectflow.params import Params, PromoteParams, RegisterParams
from defectflow.stages import StageRun
from defectflow.workdir import Workdir


def resolve_run(data_dir: str | None, workdir: str | None, params_file: str | None,
                overrides: list[str] | None) -> StageRun:
    """The flow's arguments, else params `data.dir` / `data.workdir` (params.DataParams)."""
    params = Params.load(params_file, overrides or [])
    return StageRun(params.data.data_dir(data_dir), Workdir(params.data.work_dir(workdir)), params, progress=False)


@dataclass(frozen=True)
class PromotionOutcome:
    """What the champion/challenger step decided; a refusal is an outcome, not a failure."""

    action: str
    version: str | None
    reasons: list[str]
    previous_champion: str | None = None
    metrics: dict[str, Any] | None = field(default=None)

    @property
    def promoted(self) -> bool:
        return self.action == "promoted"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "version": self.version, "reasons": self.reasons,
                               "previous_champion": self.previous_champion}
        if self.action != "refused":
            out["metrics"] = self.metrics
        return out


def decide_promotion(run: StageRun, registration: dict[str, Any], decided_by: str) -> PromotionOutcome:
    """Promote the registered challenger to champion when it earns it (registry.promote)."""
    from defectflow.registry.client import Registry
    from defectflow.registry.promote import promote
    from defectflow.registry.window import newest_window

    try:
        decision = promote(Registry(run.tracking_uri), registration["model_name"], registration["version"],
                           run.params.section("promote", PromoteParams), decided_by,
                           newest_window(run.data, run.workdir))
    except PromotionRefusedError as exc:
        return PromotionOutcome("refused", registration["version"], [str(exc)])
    return PromotionOutcome(decision.action, decision.version, list(decision.reasons), decision.previous_champion,
                            decision.metrics)


def experiment_id(run: StageRun) -> str | None:
    """The id of the run's MLflow experiment (for a link to the run), None when it does not exist."""
    from defectflow.registry.client import Registry

    name = run.params.section("register", RegisterParams).experiment
    experiment = Registry(run.tracking_uri).client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else None


def report_markdown(run: StageRun, metrics: dict[str, Any], registration: dict[str, Any],
                    promotion: PromotionOutcome | None) -> str:
    """The run's Markdown report (orchestration.report) with a link to its MLflow run."""
    from defectflow.orchestration.report import mlflow_run_link, training_report

    link = mlflow_run_link(run.tracking_uri, registration["run_id"], experiment_id(run))
    return training_report(metrics, registration, promotion.to_dict() if promotion else None, link)
