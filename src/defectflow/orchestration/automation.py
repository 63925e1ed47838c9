"""Create or update the alert Automation (and its webhook block) on a Prefect server, idempotently.

The definition lives in the repository (automations/auc-alert.yaml); this module fills in
the `{{ alerts.* }}` params, resolves block and deployment names to the server's ids, and
creates the Automation or updates the one with the same name in place.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import yaml

from defectflow.errors import ConfigError, DefectflowError
from defectflow.params import AlertsParams

log = logging.getLogger(__name__)

DEFAULT_DEFINITION = Path("automations/auc-alert.yaml")
PARAM_PLACEHOLDER = re.compile(r"\{\{\s*alerts\.(\w+)\s*\}\}")


def load_definition(path: Path, alerts: AlertsParams) -> dict[str, Any]:
    """Read the YAML definition and substitute `{{ alerts.<key> }}` from params (Prefect templates stay)."""
    if not path.exists():
        raise ConfigError(f"automation definition {path} does not exist")

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if not hasattr(alerts, key):
            raise ConfigError(f"{path}: unknown placeholder alerts.{key}")
        value = getattr(alerts, key)
        return "" if value is None else str(value)

    return yaml.safe_load(PARAM_PLACEHOLDER.sub(substitute, path.read_text()))


def save_webhook_block(block_ref: str, url: str) -> None:
    """Create or overwrite the CustomWebhookNotificationBlock `custom-webhook/<name>` alerts go through.

    The JSON body carries subject and body. To alert through Slack, Teams or email instead, save
    that block type and point alerts.notification_block at it; nothing else changes.
    """
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    slug, _, name = block_ref.rpartition("/")
    if slug != "custom-webhook":
        raise ConfigError(f"--webhook-url creates a custom-webhook block, but alerts.notification_block is "
                          f"{block_ref!r}; create that block in the Prefect UI or CLI instead")
    CustomWebhookNotificationBlock(
        name=name, url=url, method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}", "source": "defectflow"},
    ).save(name, overwrite=True)


def _resolve_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace block/deployment names with ids; drop a run-deployment whose deployment is missing."""
    from prefect.blocks.core import Block
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    resolved = []
    for action in actions:
        action = dict(action)
        if "block_document_name" in action:
            name = action.pop("block_document_name")
            try:
                action["block_document_id"] = Block.load(name)._block_document_id  # name is "<type slug>/<name>"
            except ValueError:
                raise DefectflowError(
                    f"notification block {name!r} does not exist on the Prefect server; create it with "
                    "`defectflow automations apply --webhook-url URL` or in the Prefect UI") from None
        if "deployment_name" in action:
            name = action.pop("deployment_name")
            if not name:
                continue
            try:
                with get_client(sync_client=True) as client:
                    action["deployment_id"] = client.read_deployment_by_name(name).id
            except ObjectNotFound:
                log.warning("deployment %s is not deployed yet; the automation will notify only "
                            "(run `prefect deploy --all`, then apply again to add retraining)", name)
                continue
        resolved.append(action)
    return resolved


def apply_automation(definition: dict[str, Any]) -> tuple[str, str]:
    """Create the automation, or update the existing one of the same name; return (id, 'created'|'updated')."""
    from prefect.automations import Automation
    from prefect.client.orchestration import get_client

    spec = {**definition, "actions": _resolve_actions(definition.get("actions", []))}
    automation = Automation.model_validate(spec)
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(automation.name)
        for duplicate in existing[1:]:  # left by an earlier non-idempotent create: keep exactly one
            client.delete_automation(duplicate.id)
    if existing:
        automation.id = existing[0].id
        automation.update()
        return str(automation.id), "updated"
    return str(automation.create().id), "created"
