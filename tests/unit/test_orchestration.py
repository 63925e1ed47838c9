"""The training flow's plain parts, without Prefect: cache keys built from the stage declarations,
run resolution, the promotion outcome, and the Workdir paths the other drivers share."""

from __future__ import annotations

import pytest

from defectflow.orchestration.cache_keys import stage_cache_key
from defectflow.orchestration.training import PromotionOutcome, resolve_run
from defectflow.params import Params
from defectflow.stages import StageRun, stage
from defectflow.workdir import Workdir


@pytest.fixture
def run(tmp_path, monkeypatch) -> StageRun:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    workdir = Workdir(tmp_path / "work")
    workdir.root.mkdir()
    workdir.manifest.write_bytes(b"manifest v1")
    return StageRun(tmp_path / "data", workdir, Params({}))


def test_stage_keys_follow_declared_inputs_and_params_only(run):
    featurize = stage("featurize")
    key = stage_cache_key(featurize, run)
    assert stage_cache_key(featurize, run) == key
    # executor is a setting (where the vectors are computed), not part of the result
    elsewhere = StageRun(run.data_dir, run.workdir, Params({"executor": {"kind": "local_cluster"}}))
    assert stage_cache_key(featurize, elsewhere) == key
    other_backbone = StageRun(run.data_dir, run.workdir, Params({"featurize": {"image_size": 96}}))
    assert stage_cache_key(featurize, other_backbone) != key
    run.workdir.manifest.write_bytes(b"manifest v2")
    assert stage_cache_key(featurize, run) != key


def test_register_key_names_the_registry(run):
    register = stage("register")
    other = StageRun(run.data_dir, run.workdir, Params({"register": {"tracking_uri": "sqlite:///elsewhere.db"}}))
    assert stage_cache_key(register, run) != stage_cache_key(register, other)


def test_outputs_exist_needs_every_declared_output(run):
    validate = stage("validate")
    assert not validate.outputs_exist(run.workdir)
    run.workdir.reports.mkdir()
    assert not validate.outputs_exist(run.workdir)  # an empty folder is not an output
    run.workdir.validation_report.write_text("{}")
    assert validate.outputs_exist(run.workdir)


def test_resolve_run_falls_back_to_params_then_demo_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = resolve_run(None, None, None, None)
    assert (str(run.data_dir), str(run.workdir.root)) == ("data/demo", "work/demo")
    run = resolve_run(None, None, None, ["data.dir=d", "data.workdir=w"])
    assert (str(run.data_dir), str(run.workdir.root), run.progress) == ("d", "w", False)


def test_promotion_outcome_dict_keeps_the_flow_result_shape():
    refused = PromotionOutcome("refused", "2", ["v2 is already champion"])
    assert refused.to_dict() == {"action": "refused", "version": "2", "reasons": ["v2 is already champion"],
                                 "previous_champion": None}
    promoted = PromotionOutcome("promoted", "3", ["better"], "2", {"auc": 0.95})
    assert promoted.promoted and promoted.to_dict()["metrics"] == {"auc": 0.95}


def test_workdir_names_every_shared_path(tmp_path):
    wd = Workdir(tmp_path)
    assert wd.booster == tmp_path / "model" / "booster.txt" and wd.model_spec.parent == wd.model_dir
    assert wd.oof_predictions.parent == wd.cv_dir and wd.validation_report.parent == wd.reports
    assert wd.monitoring.root == tmp_path / "monitoring"
    assert (wd.blob_cache, wd.results_db) == (tmp_path / "blob-cache", tmp_path / "results.db")


def test_default_results_url_is_a_sqlite_file_in_the_workdir(tmp_path, monkeypatch):
    from defectflow.scoring.results import RESULTS_URL_ENV, resolve_results_url

    monkeypatch.delenv(RESULTS_URL_ENV, raising=False)
    assert resolve_results_url(None, Workdir(tmp_path)) == f"sqlite:///{(tmp_path / 'results.db').resolve()}"
