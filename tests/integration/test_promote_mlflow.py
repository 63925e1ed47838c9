"""Champion/challenger promotion, history and rollback against a real `mlflow server` on PostgreSQL.

Real models: the session's trained pipeline is registered twice (the second time after
retraining with other LightGBM settings); the champion is really scored on the challenger's
newest window. The rule outcome is steered only through promote.tolerance, so both the
refusal and the promotion paths run on real numbers.
"""

from __future__ import annotations

import shutil
import time

import pytest

from defectflow.cli import main
from defectflow.params import EvaluateParams, GateParams, TrainParams
from defectflow.registry.register import register_model
from defectflow.workdir import Workdir
from tests.fixtures.pipeline import fast_params
from tests.fixtures.services import free_port

pytestmark = pytest.mark.integration

NAME = "promote-it"


def promote_cli(data, work, *extra: str) -> int:
    return main(["promote", "--data", str(data), "--workdir", str(work), "--set", f"register.model_name={NAME}",
                 *extra])


def test_promotion_refusal_history_and_rollback(trained_pipeline, mlflow_tracking, tmp_path, capsys):
    from mlflow import MlflowClient

    from defectflow.evaluation.stage import evaluate
    from defectflow.registry.client import Registry
    from defectflow.registry.history import history
    from defectflow.training.stage import train

    client = MlflowClient(mlflow_tracking, registry_uri=mlflow_tracking)
    data = trained_pipeline.data_dir
    work = tmp_path / "work"
    shutil.copytree(trained_pipeline.workdir, work, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    params = fast_params(f"register.model_name={NAME}")
    assert register_model(data, Workdir(work), params)["version"] == "1"

    # First version: no champion yet → promoted.
    assert promote_cli(data, work) == 0
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"

    # Retrain with other settings → version 2, compared with v1 on v2's newest window.
    retrained = fast_params(f"register.model_name={NAME}", "train.lgbm.learning_rate=0.2", "train.lgbm.num_leaves=7")
    train(Workdir(work), retrained.section("train", TrainParams), retrained.seed)
    assert evaluate(Workdir(work), retrained.section("evaluate", EvaluateParams),
                    retrained.section("gate", GateParams))["gate"]["passed"]
    assert register_model(data, Workdir(work), retrained)["version"] == "2"

    # A challenger must beat the champion by a full AUC point: impossible → refused, recorded.
    assert promote_cli(data, work, "--set", "promote.tolerance=-1.0") == 6
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    v2 = client.get_model_version(NAME, "2")
    assert v2.tags["promotion.decision"] == "refused"
    assert "champion_window_auc" in v2.tags["promotion.metrics"]
    assert "challenger_window_auc" in v2.tags["promotion.metrics"]
    assert v2.tags["promotion.decided_by"].startswith("cli:")

    # Any difference tolerated → promoted; stages follow (v1 archived), challenger alias consumed.
    assert promote_cli(data, work, "--set", "promote.tolerance=1.0", "--json") == 0
    assert '"action": "promoted"' in capsys.readouterr().out
    assert client.get_model_version_by_alias(NAME, "champion").version == "2"
    assert client.get_model_version(NAME, "2").current_stage == "Production"
    assert client.get_model_version(NAME, "1").current_stage == "Archived"
    assert "challenger" not in client.get_registered_model(NAME).aliases

    events = history(Registry(mlflow_tracking), NAME)
    assert [(e["action"], e["version"], e["previous_champion"]) for e in events] == [
        ("promoted", "1", None), ("refused", "2", "1"), ("promoted", "2", "1")]
    compared = events[2]["metrics"]
    assert 0.0 <= compared["champion_window_auc"] <= 1.0 and compared["window_n"] >= 20

    # Rollback returns to v1; a second rollback has nowhere to go (v1 had no predecessor).
    assert promote_cli(data, work, "--rollback") == 0
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    assert client.get_model_version(NAME, "1").current_stage == "Production"
    assert client.get_model_version(NAME, "2").tags["promotion.decision"] == "rolled_back_from"
    assert promote_cli(data, work, "--rollback") == 6
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"

    assert promote_cli(data, work, "--history") == 0
    assert "rolled_back_to" in capsys.readouterr().out


def test_version_without_passed_gate_is_never_promoted(trained_pipeline, mlflow_tracking, tmp_path):
    """A version not tagged gate_passed=true is refused, and no alias moves."""
    from mlflow import MlflowClient

    from defectflow.registry.client import Registry

    client = MlflowClient(mlflow_tracking, registry_uri=mlflow_tracking)
    name = "promote-ungated"
    work = tmp_path / "work"
    shutil.copytree(trained_pipeline.workdir, work, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    gated = register_model(trained_pipeline.data_dir, Workdir(work), fast_params(f"register.model_name={name}"))
    # Same complete model files, but its gate verdict says it failed.
    ungated = client.copy_model_version(f"models:/{name}/{gated['version']}", name)
    client.set_model_version_tag(name, ungated.version, "gate_passed", "false")

    code = main(["promote", "--version", ungated.version, "--workdir", str(work),
                 "--set", f"register.model_name={name}"])
    assert code == 6
    assert Registry(mlflow_tracking).champion(name) is None
    assert client.get_model_version(name, ungated.version).tags["promotion.decision"] == "refused"


def test_unreachable_registry_fails_fast_with_a_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert main(["promote", "--version", "1", "--workdir", str(tmp_path)]) == 7
    assert time.monotonic() - started < 30
    assert "unreachable" in capsys.readouterr().err


def test_promotion_with_the_sqlite_registry_and_a_real_comparison(trained_pipeline, tmp_path, monkeypatch, capsys):
    """The local default store answers versions as ints: re-promoting the champion must still be
    "already champion" (not a self-comparison that records a refusal), the challenger alias goes
    after promotion, and with the shipped tolerance the measured window AUCs decide."""
    from mlflow import MlflowClient

    from defectflow.evaluation.stage import evaluate
    from defectflow.registry.client import Registry
    from defectflow.registry.history import history
    from defectflow.training.stage import train

    name = "promote-sqlite"
    data, work = trained_pipeline.data_dir, tmp_path / "work"
    shutil.copytree(trained_pipeline.workdir, work, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sets = ["--set", f"register.model_name={name}", "--set", f"register.tracking_uri={uri}"]
    params = fast_params(f"register.model_name={name}", f"register.tracking_uri={uri}")
    assert register_model(data, Workdir(work), params)["version"] == "1"
    client = MlflowClient(uri, registry_uri=uri)

    def promote(*extra: str) -> int:
        return main(["promote", "--data", str(data), "--workdir", str(work), *sets, *extra])

    assert promote() == 0
    assert "challenger" not in client.get_registered_model(name).aliases
    assert promote("--version", "1") == 6
    assert "already the champion" in capsys.readouterr().err
    assert client.get_model_version(name, "1").tags["promotion.decision"] == "promoted"
    assert [e["action"] for e in history(Registry(uri), name)] == ["promoted"]

    retrained = fast_params(f"register.model_name={name}", f"register.tracking_uri={uri}",
                            "train.lgbm.learning_rate=0.2", "train.lgbm.num_leaves=7")
    train(Workdir(work), retrained.section("train", TrainParams), retrained.seed)
    evaluate(Workdir(work), retrained.section("evaluate", EvaluateParams), retrained.section("gate", GateParams))
    assert register_model(data, Workdir(work), retrained)["version"] == "2"
    code = promote()  # shipped tolerance (0.01): the two measured window AUCs decide
    event = history(Registry(uri), name)[-1]
    m = event["metrics"]
    earned = m["challenger_window_auc"] - m["champion_window_auc"] >= -m["tolerance"]
    assert m["tolerance"] == 0.01 and m["window_n"] >= 20
    assert (code, event["action"]) == ((0, "promoted") if earned else (6, "refused"))
    assert str(client.get_model_version_by_alias(name, "champion").version) == ("2" if earned else "1")
