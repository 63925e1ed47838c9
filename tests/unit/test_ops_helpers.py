"""Monitoring verdicts, the alert automation definition, cache keys and the flow report: no servers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from defectflow.errors import ConfigError
from defectflow.monitoring.monitor import judge, labelled_since
from defectflow.orchestration.automation import DEFAULT_DEFINITION, load_definition
from defectflow.orchestration.cache_keys import data_folder_digest, file_digest, stage_key
from defectflow.orchestration.report import training_report
from defectflow.params import AlertsParams, TrainParams

REPO = Path(__file__).resolve().parents[2]
CUTOFF = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def test_only_valid_labelled_images_after_training_are_judged():
    manifest = pd.DataFrame({
        "path": ["old.png", "new.png", "bad.png", "unlabelled.png", "at_cutoff.png"],
        "label": ["fail", "pass", "fail", None, "pass"],
        "status": ["ok", "ok", "quarantined", "ok", "ok"],
        "captured_at": pd.to_datetime(["2026-09-30", "2026-10-02", "2026-10-02", "2026-10-02", "2026-10-01"], utc=True),
    })
    assert labelled_since(manifest, CUTOFF)["path"].tolist() == ["new.png"]


def test_judge_needs_min_count_and_both_classes():
    alerts = AlertsParams(min_auc=0.9, min_count=4)
    assert judge([0, 1, 0], [0.1, 0.9, 0.2], alerts) == ("insufficient_data", None)
    assert judge([0, 0, 0, 0], [0.1, 0.9, 0.2, 0.3], alerts) == ("insufficient_data", None)
    assert judge([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], alerts) == ("ok", 1.0)
    verdict, auc = judge([0, 1, 0, 1], [0.9, 0.1, 0.2, 0.8], alerts)
    assert verdict == "below_threshold" and auc == 0.25  # 1 of 4 fail/pass pairs ranked right


def test_automation_definition_fills_params_and_keeps_prefect_templates(monkeypatch):
    monkeypatch.chdir(REPO)
    alerts = AlertsParams(event="x.auc-low", notification_block="custom-webhook/ops", retrain_deployment="a/b")
    spec = load_definition(DEFAULT_DEFINITION, alerts)
    assert spec["trigger"]["expect"] == ["x.auc-low"]
    notify, run = spec["actions"]
    assert notify["block_document_name"] == "custom-webhook/ops" and run["deployment_name"] == "a/b"
    assert "{{ event.payload.auc }}" in notify["body"] and "{{ event.payload.threshold }}" in notify["body"]


def test_automation_definition_rejects_unknown_placeholders(tmp_path):
    bad = tmp_path / "a.yaml"
    bad.write_text("name: x\nexpect: '{{ alerts.nope }}'\n")
    with pytest.raises(ConfigError, match="alerts.nope"):
        load_definition(bad, AlertsParams())


def test_cache_keys_follow_content_not_time(tmp_path):
    (tmp_path / "labels.csv").write_text("image,label,captured_at\na.png,pass,2026-09-01\n")
    (tmp_path / "a.png").write_bytes(b"x")
    before = data_folder_digest(tmp_path)
    assert data_folder_digest(tmp_path) == before
    (tmp_path / "b.png").write_bytes(b"y")
    assert data_folder_digest(tmp_path) != before

    assert stage_key("train", "d1", TrainParams()) == stage_key("train", "d1", TrainParams())
    assert stage_key("train", "d1", TrainParams()) != stage_key("train", "d1", TrainParams(n_folds=3))
    assert file_digest(tmp_path / "missing") == "missing"
    assert file_digest(tmp_path) != file_digest(tmp_path / "a.png")


def test_training_report_has_fold_table_gate_and_links():
    metrics = {"folds": [{"fold": 1, "test_start": "2026-09-10", "test_end": "2026-09-20", "n_train": 80,
                          "n_test": 40, "auc": 0.93}], "mean_auc": 0.93, "min_auc": 0.93, "threshold": 0.2,
               "target_fail_recall": 0.98, "review_reduction": 0.61,
               "gate": {"passed": True, "reasons": ["mean AUC 0.9300 ≥ 0.9"]}}
    registration = {"version": "4", "model_uri": "models:/m/4", "run_id": "r1"}
    promotion = {"action": "refused", "previous_champion": "3", "reasons": ["challenger is worse"]}
    md = training_report(metrics, registration, promotion, "[r1](http://mlflow/#/experiments/1/runs/r1)")
    assert "| 1 | 2026-09-10 → 2026-09-20 | 80 | 40 | 0.9300 |" in md
    assert "Gate: PASSED" in md and "61.0%" in md and "models:/m/4" in md
    assert "Promotion: refused" in md and "challenger is worse" in md and "runs/r1" in md
