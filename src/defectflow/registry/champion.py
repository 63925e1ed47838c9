"""Facts about registered versions that promotion and monitoring both need."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"

# Version tag set by register: the capture time of the newest image the model was trained on.
TRAINED_UNTIL_TAG = "trained_until"


def current_champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version the `champion` alias points at, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def training_cutoff(mv: ModelVersion) -> dt.datetime:
    """When the version's training data ends (its `trained_until` tag, set by register); its
    registration time for versions registered without one.

    Images captured after this instant cannot have been trained on, so they judge the model fairly.
    """
    import pandas as pd

    value = (mv.tags or {}).get(TRAINED_UNTIL_TAG)
    if value:
        ts = pd.Timestamp(value)
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()
    return dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=dt.timezone.utc)
