"""One source of configuration: the packaged defaults equal the shipped params.yaml, a missing
./params.yaml is an explicit (logged) choice of them, unknown sections are errors, and the typed
`data` section is the only default for the data folder and the workdir."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from defectflow.cli import main
from defectflow.errors import ConfigError, DataFolderMissingError, ExitCode
from defectflow.params import SECTIONS, DataParams, FeaturizeParams, Params, TrainParams

REPO = Path(__file__).resolve().parents[2]


def test_packaged_defaults_equal_the_shipped_params_file():
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(shipped) == {"seed", *SECTIONS}, "every params.yaml section has a dataclass, and no other"
    defaults = Params.defaults().tree
    for name in shipped:
        assert defaults[name] == shipped[name], f"params.py defaults differ from params.yaml in section {name!r}"


def test_the_shipped_model_settings_are_the_defaults():
    lgbm = TrainParams().lgbm
    assert lgbm["n_estimators"] == 600 and len(lgbm) == 10
    assert FeaturizeParams().finetune_params() == FeaturizeParams(finetune={}).finetune_params()


def test_missing_default_file_uses_the_packaged_defaults_and_says_so(tmp_path, monkeypatch, caplog):
    shipped = Params.load(REPO / "params.yaml")
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="defectflow.params"):
        packaged = Params.load()
    assert "no params.yaml" in caplog.text and "packaged defaults" in caplog.text
    for name, cls in SECTIONS.items():
        assert packaged.section(name, cls) == shipped.section(name, cls), name
    assert packaged.seed == shipped.seed
    assert packaged.flat()["train.lgbm.n_estimators"] == 600  # MLflow sees the values the run used


def test_a_named_missing_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="params.yaml does not exist: pass --params FILE"):
        Params.load("params.yaml")


@pytest.mark.parametrize("text", ["featurise:\n  batch_size: 8\n", "seed: 1\ntrian: {}\n"])
def test_unknown_top_level_section_is_named_with_the_known_ones(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"unknown top-level section\(s\) in params: (featurise|trian); "
                                          r"known sections are alerts, anomaly, .*featurize.*seed"):
        Params.load(path)


def test_unknown_section_from_an_override_is_named():
    with pytest.raises(ConfigError, match="unknown top-level section.*featurise"):
        Params.load(REPO / "params.yaml", ["featurise.batch_size=8"])


@pytest.mark.parametrize(("text", "message"), [
    ("train: 3\n", "section 'train' must be a mapping"),
    ("- a\n- b\n", "must be a mapping of sections"),
    ("train:\n  lgbm: {num_leaves: 7}\n", "train.lgbm=.* must set n_estimators"),
    ("train:\n  lgbm: {n_estimators: 10, num_boost_round: 20}\n", "sets the rounds as num_boost_round"),
])
def test_malformed_sections_are_refused(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Params.load(path)


def test_data_section_is_typed_with_one_default():
    assert Params({}).data == DataParams() == Params.load(REPO / "params.yaml").data
    assert DataParams().data_dir() == Path("data/demo") and DataParams().work_dir() == Path("work/demo")
    assert DataParams().data_dir("elsewhere") == Path("elsewhere")
    with pytest.raises(ConfigError, match="unknown key.*'data': folder"):
        _ = Params({"data": {"folder": "x"}}).data
    with pytest.raises(DataFolderMissingError, match="no data folder: pass --data DIR or set data.dir"):
        DataParams(dir=None).data_dir()


@pytest.mark.parametrize("command", [["validate"], ["featurize"], ["register"], ["pipeline"], ["monitor"],
                                     ["drift", "--reference-until", "2026-10-01T00:00:00Z"]])
def test_no_data_folder_is_the_same_error_in_every_command(tmp_path, capsys, command):
    rc = main([*command, "--workdir", str(tmp_path / "w"), "--params", str(REPO / "params.yaml"),
               "--set", "data.dir=null"])
    assert rc == ExitCode.CONFIG == DataFolderMissingError.exit_code
    assert "pass --data DIR" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
