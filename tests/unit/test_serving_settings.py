"""Service settings come from DEFECTFLOW_* variables; bad values fail with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectflow.errors import ConfigError
from defectflow.serving.settings import ServingSettings


def test_from_env_parses_types_and_flags_override():
    s = ServingSettings.from_env({"DEFECTFLOW_MODEL_DIR": "/m", "DEFECTFLOW_PORT": "9001", "DEFECTFLOW_API_KEY": "k",
                                  "DEFECTFLOW_EXTRA_ROUTERS": "a.b:r, c.d:r"}, port=9002)
    assert (s.model_dir, s.port, s.auth_enabled, s.extra_routers) == (Path("/m"), 9002, True, ("a.b:r", "c.d:r"))


def test_auth_on_without_a_key_is_refused():
    with pytest.raises(ConfigError, match="DEFECTFLOW_API_KEY"):
        ServingSettings.from_env({})
    assert not ServingSettings.from_env({"DEFECTFLOW_AUTH_ENABLED": "false"}).auth_enabled


def test_bad_values_name_the_variable_and_hide_the_key():
    with pytest.raises(ConfigError, match="DEFECTFLOW_PORT"):
        ServingSettings.from_env({"DEFECTFLOW_PORT": "eighty", "DEFECTFLOW_API_KEY": "k"})
    with pytest.raises(ConfigError, match="DEFECTFLOW_AUTH_ENABLED"):
        ServingSettings.from_env({"DEFECTFLOW_AUTH_ENABLED": "maybe"})
    assert "s3cret" not in repr(ServingSettings(api_key="s3cret"))
