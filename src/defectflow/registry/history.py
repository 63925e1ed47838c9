"""The recorded history of promotion decisions in the MLflow registry.

Every decision is a registered-model tag `promotion.log.<timestamp>` holding JSON (action,
version, previous champion, who decided, when, metrics, reasons), and each version carries
`promotion.*` tags with its latest decision. `history()` reads the log back.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from defectflow.registry.names import PROMOTION_LOG_TAG_PREFIX, PROMOTION_VERSION_TAG_PREFIX

if TYPE_CHECKING:
    from defectflow.registry.client import Registry


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def record_decision(registry: Registry, name: str, action: str, version: str, previous: str | None,
                    decided_by: str, reasons: Sequence[str], metrics: dict[str, float]) -> dict[str, Any]:
    """Write one history event on the registered model and the latest decision on the version."""
    at = _now()
    event = {"action": action, "version": version, "previous_champion": previous, "decided_by": decided_by,
             "decided_at": at, "reasons": list(reasons), "metrics": metrics}
    stamp = at.replace(":", "").replace("-", "").replace("+0000", "Z")
    registry.client.set_registered_model_tag(name, f"{PROMOTION_LOG_TAG_PREFIX}{stamp}", json.dumps(event))
    registry.tag_version(name, version, {
        f"{PROMOTION_VERSION_TAG_PREFIX}{key}": value
        for key, value in (("decision", action), ("decided_by", decided_by), ("decided_at", at),
                           ("reason", "; ".join(reasons)), ("metrics", json.dumps(metrics)))})
    return event


def mark_version(registry: Registry, name: str, version: str, decision: str) -> None:
    """Overwrite the version's latest decision (a rolled-back champion is marked `rolled_back_from`)."""
    registry.tag_version(name, version, {f"{PROMOTION_VERSION_TAG_PREFIX}decision": decision})


def history(registry: Registry, name: str) -> list[dict[str, Any]]:
    """Every recorded promotion, refusal and rollback of `name`, oldest first."""
    tags = registry.client.get_registered_model(name).tags or {}
    return [json.loads(tags[k]) for k in sorted(k for k in tags if k.startswith(PROMOTION_LOG_TAG_PREFIX))]
