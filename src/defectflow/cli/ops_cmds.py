"""Operations commands: promote / roll back the champion, monitor it, install the alert automation."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from defectflow.cli.common import add_run_args, emit, load_params, resolve_dirs
from defectflow.errors import DataFolderMissingError, DefectflowError, ExitCode
from defectflow.params import AlertsParams, Params, PromoteParams, RegisterParams
from defectflow.workdir import Workdir

if TYPE_CHECKING:
    from defectflow.registry.client import Registry


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("promote", help="make a registered version champion (rules + history), or roll back",
                       description="Promote the workdir's registered challenger (or --version V) to champion when its "
                                   "gate passed and it is no worse than the champion on the newest time window; "
                                   "--rollback returns to the previous champion; --history lists every decision.")
    add_run_args(p)
    action = p.add_mutually_exclusive_group()
    action.add_argument("--version",
                        help="registered version to promote (default: the one in <workdir>/registered.json)")
    action.add_argument("--rollback", action="store_true", help="return the champion alias to the previous champion")
    action.add_argument("--history", action="store_true", help="print every promotion, refusal and rollback")
    p.add_argument("--name", help="registered model name (default: params register.model_name)")
    p.set_defaults(func=run_promote)

    p = sub.add_parser("monitor",
                       help="score the champion on images labelled since it was trained; alert below alerts.min_auc",
                       description="Validates --data, scores the champion on valid labelled images captured after its "
                                   "training data, logs the AUC to MLflow and (with PREFECT_API_URL set) emits Prefect "
                                   f"events. Exit code {int(ExitCode.AUC_ALERT)} when the AUC is below alerts.min_auc.")
    add_run_args(p)
    p.set_defaults(func=run_monitor)

    p = sub.add_parser("automations", help="Prefect automations shipped with defectflow")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    a = verbs.add_parser("apply", help="create or update the AUC alert automation on the Prefect server (idempotent)")
    a.add_argument("--file", type=Path, default=None,
                   help="automation definition (default: automations/auc-alert.yaml)")
    a.add_argument("--webhook-url", default=os.environ.get("DEFECTFLOW_ALERT_WEBHOOK_URL"),
                   help="create/overwrite the webhook notification block with this URL "
                        "(default $DEFECTFLOW_ALERT_WEBHOOK_URL; omit to keep an existing block)")
    a.add_argument("--params", type=Path, help="params file (default: ./params.yaml)")
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=run_automations_apply)


def decided_by_cli() -> str:
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


def registry_client(params: Params, workdir: Workdir) -> Registry:
    """The configured registry, after checking it answers (exit 7 at once otherwise)."""
    from defectflow.registry.client import Registry

    return Registry.from_params(params, workdir).reachable()


def run_promote(args: argparse.Namespace) -> int:
    from defectflow.registry import promote as reg
    from defectflow.registry.history import history

    params = load_params(args)
    data_dir, workdir = resolve_dirs(args, params)
    name = args.name or params.section("register", RegisterParams).model_name
    registry = registry_client(params, workdir)
    if args.history:
        events = history(registry, name)
        emit(args, {"model_name": name, "events": events}, "\n".join(
            f"{e['decided_at']}  {e['action']:<16} v{e['version']:<4} previous={e['previous_champion'] or '-':<4} "
            f"by {e['decided_by']}: {'; '.join(e['reasons'])}" for e in events) or f"no promotion history for {name}")
        return 0
    if args.rollback:
        event = reg.rollback(registry, name, decided_by_cli())
        emit(args, event, f"{name}: champion rolled back to v{event['version']} (was v{event['previous_champion']})")
        return 0
    version, window = promotion_target(args.version, data_dir, workdir)
    decision = reg.promote(registry, name, version, params.section("promote", PromoteParams), decided_by_cli(), window)
    emit(args, {"model_name": name, "version": decision.version, "action": decision.action,
                "previous_champion": decision.previous_champion, "reasons": list(decision.reasons),
                "metrics": decision.metrics},
         f"{name} v{decision.version} is now champion (previous: {decision.previous_champion or 'none'})\n  "
         + "\n  ".join(decision.reasons))
    return 0


def promotion_target(version: str | None, data_dir: Path | None, workdir: Workdir):
    """The version to promote and its newest window, both from the workdir that registered it."""
    from defectflow.registry.window import newest_window

    registered = json.loads(workdir.registration.read_text()) if workdir.registration.exists() else {}
    if version is None:
        if not registered.get("version"):
            raise DefectflowError(f"no registered version in {workdir.registration}: pass --version V, or run "
                                  "`defectflow register` (a failed gate registers no version)")
        version = str(registered["version"])
    if str(registered.get("version")) != str(version) or data_dir is None:
        # The window rests on this workdir's out-of-fold predictions: it only describes the version it registered.
        return version, None
    return version, newest_window(data_dir, workdir)


def run_monitor(args: argparse.Namespace) -> int:
    from defectflow.monitoring.monitor import monitor_champion
    from defectflow.orchestration.events import emit_monitoring_events

    params = load_params(args)
    data_dir, workdir = resolve_dirs(args, params)
    if data_dir is None:
        raise DataFolderMissingError("pass --data DIR: the folder of newly labelled images to judge the champion on")
    registry = registry_client(params, workdir)
    result = monitor_champion(data_dir, workdir.monitoring, params, registry.tracking_uri)
    sent = (emit_monitoring_events(result, params.section("alerts", AlertsParams))
            if os.environ.get("PREFECT_API_URL") else [])
    auc = "n/a" if result.auc is None else f"{result.auc:.4f}"
    emit(args, {**result.as_dict(), "events": sent},
         f"{result.model_name} v{result.model_version}: AUC {auc} on {result.n} images labelled since {result.since} "
         f"(threshold {result.min_auc}, minimum {result.min_count}) → {result.verdict}"
         + ("" if sent else "\n  (PREFECT_API_URL not set: no Prefect event emitted)"))
    return ExitCode.AUC_ALERT if result.alert else ExitCode.OK


def run_automations_apply(args: argparse.Namespace) -> int:
    from defectflow.orchestration.automation import (
        DEFAULT_DEFINITION,
        apply_automation,
        load_definition,
        save_webhook_block,
    )

    if not os.environ.get("PREFECT_API_URL"):
        raise DefectflowError("PREFECT_API_URL is not set: point it at your Prefect server "
                              "(for example http://127.0.0.1:4200/api) so the automation outlives this command")
    alerts = load_params(args).section("alerts", AlertsParams)
    if args.webhook_url:
        save_webhook_block(alerts.notification_block, args.webhook_url)
    automation_id, how = apply_automation(load_definition(args.file or DEFAULT_DEFINITION, alerts))
    emit(args, {"automation_id": automation_id, "result": how, "notification_block": alerts.notification_block},
         f"automation {how}: {automation_id} (alerts go to notification block {alerts.notification_block!r})")
    return 0
