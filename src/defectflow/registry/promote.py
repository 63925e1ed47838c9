"""Promote a registered version to champion, or roll the champion back: the only writers of the
`champion` alias.

The commit point of a promotion is one alias write (`champion` → version), which MLflow
applies as a single update, so readers of `models:/<name>@champion` see the old or the new
version, never a gap. Before it, the version is checked (READY, tagged gate_passed=true, its
model files present) so the alias never points at a broken or missing version. After it, the
decision is recorded (`registry.history`) and the stage moved to Production (previous one
archived, for tools that still read stages); if recording fails, the alias is moved back and
the error re-raised. Who may replace whom is judged by `registry.promotion_rule`, on the
newest window from `registry.window`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from defectflow.errors import PromotionRefusedError
from defectflow.params import PromoteParams
from defectflow.registry.history import history, mark_version, record_decision
from defectflow.registry.names import CHALLENGER, CHAMPION, GATE_TAG, PRODUCTION_STAGE, ModelVersionRef
from defectflow.registry.promotion_rule import Candidate, Decision, WindowScore, decide
from defectflow.registry.window import NewestWindow, comparison_window

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from defectflow.registry.client import Registry

log = logging.getLogger(__name__)


def _window_auc(labels: list[int], scores: list[float]) -> float:
    """ROC AUC on the window, NaN when it holds a single class (the rule refuses to compare then)."""
    from defectflow.evaluation.metrics import auc

    return auc(np.asarray(labels), np.asarray(scores)) if len(set(labels)) == 2 else math.nan


def _unfit_for_production(registry: Registry, name: str, mv: ModelVersion) -> str | None:
    """Why this version must not be champion (None when it may be)."""
    if mv.status != "READY":
        return f"version {mv.version} is {mv.status}, not READY"
    if (mv.tags or {}).get(GATE_TAG) != "true":
        return (f"version {mv.version} is not tagged {GATE_TAG}=true (its gate failed or it was registered "
                "outside the pipeline)")
    try:
        files = registry.model_files(ModelVersionRef(name, str(mv.version)))
    except Exception as exc:  # any storage error means we cannot vouch for the files
        return f"version {mv.version}: its model files cannot be listed ({type(exc).__name__}: {exc})"
    if "MLmodel" not in files:
        return f"version {mv.version}: its model files are missing (no MLmodel in the artifact store)"
    return None


def _make_champion(registry: Registry, name: str, version: str, previous: str | None,
                   record: Callable[[], None]) -> None:
    """Move the alias (the commit point), record, then move stages; undo the alias if recording fails."""
    registry.set_alias(name, CHAMPION, version)
    try:
        record()
    except Exception:
        if previous is not None:
            registry.set_alias(name, CHAMPION, previous)
        else:
            registry.delete_alias(name, CHAMPION)
        raise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stages are deprecated in MLflow 3 but still read by some tools
        registry.client.transition_model_version_stage(name, version, PRODUCTION_STAGE, archive_existing_versions=True)
    try:
        if str(registry.client.get_model_version_by_alias(name, CHALLENGER).version) == str(version):
            registry.delete_alias(name, CHALLENGER)
    except Exception:
        pass  # no challenger alias (or it points elsewhere): nothing to tidy


def promote(registry: Registry, name: str, version: str, params: PromoteParams, decided_by: str,
            window: NewestWindow | None = None) -> Decision:
    """Make `version` champion if the rules allow it; record the decision either way.

    `window` is the challenger's newest time window; it is required once a champion exists
    (the champion is scored on the same images). Raises PromotionRefusedError on refusal.
    """
    from mlflow.exceptions import MlflowException

    try:
        mv = registry.client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise PromotionRefusedError(f"model {name!r} has no version {version}: {exc.message}") from None
    version = str(mv.version)
    champion_mv = registry.champion(name)
    previous = str(champion_mv.version) if champion_mv else None  # the SQLite store answers ints
    if previous == version:
        # Nothing to decide (e.g. a resumed flow run): recording a refusal would overwrite the
        # version's "promoted" tags while it is in production.
        raise PromotionRefusedError(f"{name} v{version} is already the champion; nothing changed")

    unfit = _unfit_for_production(registry, name, mv)
    if unfit:
        decision = Decision(False, version, previous, (unfit,), {"tolerance": params.tolerance})
    else:
        note = None
        champion = None
        if champion_mv is not None and window is not None:
            window, note = comparison_window(champion_mv, window, params.min_window)
            scores = registry.fail_probabilities(ModelVersionRef(name, str(champion_mv.version)), window.images)
            champion = Candidate(champion_mv.version, True,
                                 WindowScore(_window_auc(window.labels, scores), len(window.labels)))
        elif champion_mv is not None:
            champion = Candidate(champion_mv.version, True, None)
        challenger = Candidate(version, True, WindowScore(_window_auc(window.labels, window.challenger_scores),
                                                          len(window.labels)) if window else None)
        decision = decide(challenger, champion, params.tolerance, params.min_window)
        if note:
            decision = replace(decision, reasons=decision.reasons + (note,))

    def record() -> None:
        record_decision(registry, name, decision.action, version, previous, decided_by, decision.reasons,
                        decision.metrics)

    if not decision.promote:
        record()
        log.warning("promotion of %s v%s refused: %s", name, version, "; ".join(decision.reasons))
        raise PromotionRefusedError("; ".join(decision.reasons))
    _make_champion(registry, name, version, previous, record)
    log.info("%s v%s is now champion (previous: %s): %s", name, version, previous or "none",
             "; ".join(decision.reasons))
    return decision


def rollback(registry: Registry, name: str, decided_by: str) -> dict[str, Any]:
    """Return the champion alias to the version that was champion before the current one."""
    champion_mv = registry.champion(name)
    if champion_mv is None:
        raise PromotionRefusedError(f"model {name!r} has no champion; there is nothing to roll back")
    current = str(champion_mv.version)
    # The champion became champion by a promotion (or an earlier rollback that restored it);
    # its latest "promoted" event names who was champion before it.
    promotions = [e for e in history(registry, name) if e["action"] == "promoted" and e["version"] == current]
    target = promotions[-1]["previous_champion"] if promotions else None
    if target is None:
        raise PromotionRefusedError(f"{name} v{current} has no recorded previous champion to roll back to")
    target_mv = registry.client.get_model_version(name, target)
    unfit = _unfit_for_production(registry, name, target_mv)
    if unfit:
        raise PromotionRefusedError(f"cannot roll back to v{target}: {unfit}")
    reason = f"rollback: v{current} replaced by the previous champion v{target}"
    events: list[dict[str, Any]] = []

    def record() -> None:
        events.append(record_decision(registry, name, "rolled_back_to", target, current, decided_by, [reason], {}))
        mark_version(registry, name, current, "rolled_back_from")

    _make_champion(registry, name, target, current, record)
    log.info("%s", reason)
    return events[0]
