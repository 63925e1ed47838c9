"""Champion/challenger promotion and rollback in the MLflow registry, with a recorded history.

The commit point of a promotion is one alias write (`champion` → version), which MLflow
applies as a single update, so readers of `models:/<name>@champion` see the old or the new
version, never a gap. Before it, the version is checked (READY, tagged gate_passed=true, its
model files present) so the alias never points at a broken or missing version. After it, the
decision is recorded and the stage moved to Production (previous one archived, for tools that
still read stages); if recording fails, the alias is moved back and the error re-raised.

History: every decision is a registered-model tag `promotion.log.<timestamp>` holding JSON
(action, version, previous champion, who decided, when, metrics, reasons), and each version
carries tags with its latest decision. `history()` reads the log back.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from defectflow.errors import PromotionRefusedError
from defectflow.params import PromoteParams
from defectflow.registry.champion import CHALLENGER, CHAMPION, current_champion, training_cutoff
from defectflow.registry.promotion import Candidate, Decision, WindowScore, decide
from defectflow.workdir import Workdir

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

GATE_TAG = "gate_passed"
LOG_TAG_PREFIX = "promotion.log."
VERSION_TAG_PREFIX = "promotion."


@dataclass(frozen=True)
class NewestWindow:
    """The challenger's newest time window (its last CV fold's test block): images, capture
    times, labels (1 = fail) and the challenger's out-of-fold scores (from a model that never saw them)."""

    images: list[str]
    captured_at: list[dt.datetime]
    labels: list[int]
    challenger_scores: list[float]

    def after(self, cutoff: dt.datetime) -> NewestWindow:
        keep = [i for i, t in enumerate(self.captured_at) if t > cutoff]
        return NewestWindow(*([column[i] for i in keep] for column in
                              (self.images, self.captured_at, self.labels, self.challenger_scores)))


def newest_window(data_dir: Path, workdir: Workdir) -> NewestWindow:
    """Read the last fold's out-of-fold predictions written by the train stage."""
    import pandas as pd

    if not workdir.oof_predictions.exists():
        raise PromotionRefusedError(f"{workdir.oof_predictions} not found: the newest-window comparison needs the "
                                    "workdir that trained the challenger (run `defectflow train` first)")
    oof = pd.read_parquet(workdir.oof_predictions)
    last = oof[oof["fold"] == oof["fold"].max()]
    return NewestWindow([str(Path(data_dir) / p) for p in last["path"]],
                        [t.to_pydatetime() for t in pd.to_datetime(last["captured_at"], utc=True)],
                        last["y"].astype(int).tolist(), last["p_fail"].astype(float).tolist())


def comparison_window(client: MlflowClient, champion_mv: ModelVersion, window: NewestWindow,
                      min_window: int) -> tuple[NewestWindow, str | None]:
    """Keep only window images captured after the champion's training data, when enough remain.

    The champion's final model may have been trained on part of the challenger's newest
    window, which flatters the champion. With too few unseen images the whole window is used
    (a comparison biased toward keeping the champion, i.e. conservative) and a note says so.
    """
    cutoff = training_cutoff(champion_mv)
    unseen = window.after(cutoff)
    if len(unseen.labels) >= min_window and len(set(unseen.labels)) == 2:
        return unseen, None
    return window, (f"only {len(unseen.labels)} window images postdate the champion's training data "
                    f"({cutoff.isoformat()}); compared on the whole window, which may favour the champion")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def _auc(labels: list[int], scores: list[float]) -> float:
    """ROC AUC, NaN when the window holds a single class (the rules refuse to compare then)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else math.nan


def _unfit_for_production(client: MlflowClient, name: str, mv: ModelVersion) -> str | None:
    """Why this version must not be champion (None when it may be)."""
    import mlflow

    if mv.status != "READY":
        return f"version {mv.version} is {mv.status}, not READY"
    if (mv.tags or {}).get(GATE_TAG) != "true":
        return f"version {mv.version} is not tagged {GATE_TAG}=true (its gate failed or it was registered outside the pipeline)"
    try:
        files = {a.path.rsplit("/", 1)[-1] for a in mlflow.artifacts.list_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, mv.version))}
    except Exception as exc:  # any storage error means we cannot vouch for the files
        return f"version {mv.version}: its model files cannot be listed ({type(exc).__name__}: {exc})"
    if "MLmodel" not in files:
        return f"version {mv.version}: its model files are missing (no MLmodel in the artifact store)"
    return None


def score_champion_on_window(champion_version: str, name: str, window: NewestWindow) -> WindowScore:
    """Score the champion's pyfunc on the challenger's newest-window images."""
    import mlflow
    import pandas as pd

    model = mlflow.pyfunc.load_model(f"models:/{name}/{champion_version}")
    scores = model.predict(pd.DataFrame({"image": window.images}))["fail_probability"].tolist()
    return WindowScore(_auc(window.labels, scores), len(window.labels))


def _record(client: MlflowClient, name: str, action: str, version: str, previous: str | None,
            decided_by: str, reasons: tuple[str, ...] | list[str], metrics: dict[str, float]) -> dict[str, Any]:
    """Write one history event on the registered model and the latest decision on the version."""
    at = _now()
    event = {"action": action, "version": version, "previous_champion": previous, "decided_by": decided_by,
             "decided_at": at, "reasons": list(reasons), "metrics": metrics}
    stamp = at.replace(":", "").replace("-", "").replace("+0000", "Z")
    client.set_registered_model_tag(name, f"{LOG_TAG_PREFIX}{stamp}", json.dumps(event))
    for key, value in (("decision", action), ("decided_by", decided_by), ("decided_at", at),
                       ("reason", "; ".join(reasons)), ("metrics", json.dumps(metrics))):
        client.set_model_version_tag(name, version, f"{VERSION_TAG_PREFIX}{key}", value)
    return event


def _make_champion(client: MlflowClient, name: str, version: str, previous: str | None, record) -> None:
    """Move the alias (the commit point), record, then move stages; undo the alias if recording fails."""
    client.set_registered_model_alias(name, CHAMPION, version)
    try:
        record()
    except Exception:
        if previous is not None:
            client.set_registered_model_alias(name, CHAMPION, previous)
        else:
            client.delete_registered_model_alias(name, CHAMPION)
        raise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stages are deprecated in MLflow 3 but still read by some tools
        client.transition_model_version_stage(name, version, "Production", archive_existing_versions=True)
    try:
        if str(client.get_model_version_by_alias(name, CHALLENGER).version) == str(version):
            client.delete_registered_model_alias(name, CHALLENGER)
    except Exception:
        pass  # no challenger alias (or it points elsewhere): nothing to tidy


def promote(client: MlflowClient, name: str, version: str, params: PromoteParams, decided_by: str,
            window: NewestWindow | None = None) -> Decision:
    """Make `version` champion if the rules allow it; record the decision either way.

    `window` is the challenger's newest time window; it is required once a champion exists
    (the champion is scored on the same images). Raises PromotionRefusedError on refusal.
    """
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise PromotionRefusedError(f"model {name!r} has no version {version}: {exc.message}") from None
    version = str(mv.version)
    champion_mv = current_champion(client, name)
    previous = str(champion_mv.version) if champion_mv else None  # the SQLite store answers ints
    if previous == version:
        # Nothing to decide (e.g. a resumed flow run): recording a refusal would overwrite the
        # version's "promoted" tags while it is in production.
        raise PromotionRefusedError(f"{name} v{version} is already the champion; nothing changed")

    unfit = _unfit_for_production(client, name, mv)
    if unfit:
        decision = Decision(False, version, previous, (unfit,), {"tolerance": params.tolerance})
    else:
        note = None
        champion = None
        if champion_mv is not None and window is not None:
            window, note = comparison_window(client, champion_mv, window, params.min_window)
            champion = Candidate(champion_mv.version, True, score_champion_on_window(champion_mv.version, name, window))
        elif champion_mv is not None:
            champion = Candidate(champion_mv.version, True, None)
        challenger = Candidate(version, True, WindowScore(_auc(window.labels, window.challenger_scores),
                                                          len(window.labels)) if window else None)
        decision = decide(challenger, champion, params.tolerance, params.min_window)
        if note:
            decision = replace(decision, reasons=decision.reasons + (note,))

    def record() -> None:
        _record(client, name, decision.action, version, previous, decided_by, decision.reasons, decision.metrics)

    if not decision.promote:
        record()
        log.warning("promotion of %s v%s refused: %s", name, version, "; ".join(decision.reasons))
        raise PromotionRefusedError("; ".join(decision.reasons))
    _make_champion(client, name, version, previous, record)
    log.info("%s v%s is now champion (previous: %s): %s", name, version, previous or "none", "; ".join(decision.reasons))
    return decision


def history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Every recorded promotion, refusal and rollback of `name`, oldest first."""
    tags = client.get_registered_model(name).tags or {}
    return [json.loads(tags[k]) for k in sorted(k for k in tags if k.startswith(LOG_TAG_PREFIX))]


def rollback(client: MlflowClient, name: str, decided_by: str) -> dict[str, Any]:
    """Return the champion alias to the version that was champion before the current one."""
    champion_mv = current_champion(client, name)
    if champion_mv is None:
        raise PromotionRefusedError(f"model {name!r} has no champion; there is nothing to roll back")
    current = str(champion_mv.version)
    # The champion became champion by a promotion (or an earlier rollback that restored it);
    # its latest "promoted" event names who was champion before it.
    promotions = [e for e in history(client, name) if e["action"] == "promoted" and e["version"] == current]
    target = promotions[-1]["previous_champion"] if promotions else None
    if target is None:
        raise PromotionRefusedError(f"{name} v{current} has no recorded previous champion to roll back to")
    target_mv = client.get_model_version(name, target)
    unfit = _unfit_for_production(client, name, target_mv)
    if unfit:
        raise PromotionRefusedError(f"cannot roll back to v{target}: {unfit}")
    reason = f"rollback: v{current} replaced by the previous champion v{target}"
    events: list[dict[str, Any]] = []

    def record() -> None:
        events.append(_record(client, name, "rolled_back_to", target, current, decided_by, [reason], {}))
        client.set_model_version_tag(name, current, f"{VERSION_TAG_PREFIX}decision", "rolled_back_from")

    _make_champion(client, name, target, current, record)
    log.info("%s", reason)
    return events[0]
