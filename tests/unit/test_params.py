"""params.yaml loading, --set overrides, and typed sections."""

from __future__ import annotations

import pytest

from defectflow.errors import ConfigError
from defectflow.params import FeaturizeParams, Params, TrainParams


def test_repo_params_file_builds_every_core_section():
    params = Params.load("params.yaml")
    assert params.section("featurize", FeaturizeParams).backbone in {"mobilenet_v2", "resnet50"}
    assert params.section("train", TrainParams).n_folds >= 2


def test_overrides_parse_yaml_values_and_nest():
    params = Params.load("params.yaml", ["train.n_folds=3", "featurize.weights=none", "train.lgbm.num_leaves=7",
                                         "register.tracking_uri=null"])
    train = params.section("train", TrainParams)
    assert train.n_folds == 3 and train.lgbm["num_leaves"] == 7
    assert params.get("featurize.weights") == "none" and params.get("register.tracking_uri") is None


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="n_fold.*known keys"):
        Params.load("params.yaml", ["train.n_fold=3"])  # every section is checked when params load
    with pytest.raises(ConfigError, match="n_fold.*known keys"):
        Params({"train": {"n_fold": 3}}).section("train", TrainParams)


@pytest.mark.parametrize("bad", ["train.n_folds", "=3"])
def test_malformed_override(bad):
    with pytest.raises(ConfigError, match="key=value"):
        Params.load("params.yaml", [bad])


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Params.load(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Params.load(broken)
