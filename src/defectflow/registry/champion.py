"""Facts about registered versions that promotion and monitoring both need."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"

# Where the end of a version's training data may be recorded (version tag, run tag or param),
# most specific first; `trained_until` is what the train stage writes into spec.json.
TRAIN_END_KEYS = ("trained_until", "train_data_end", "data.captured_at_max")


def current_champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version the `champion` alias points at, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def training_cutoff(client: MlflowClient, mv: ModelVersion) -> dt.datetime:
    """When the version's training data ends; its registration time when nothing more exact was recorded.

    Looked up in the version's tags, its run's tags and params, then the `spec.json` bundled in
    the model (written by the train stage). Images captured after this instant cannot have been
    trained on, so they judge the model fairly.
    """
    import pandas as pd

    def as_utc(value: str) -> dt.datetime:
        ts = pd.Timestamp(value)
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()

    sources = [mv.tags or {}]
    if mv.run_id:
        run = client.get_run(mv.run_id)
        sources += [run.data.tags, run.data.params]
    for source in sources:
        for key in TRAIN_END_KEYS:
            if source.get(key):
                return as_utc(source[key])
    spec = bundled_spec(client, mv)
    if spec.get("trained_until"):
        return as_utc(spec["trained_until"])
    return dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=dt.timezone.utc)


def bundled_spec(client: MlflowClient, mv: ModelVersion) -> dict:
    """The model's bundled spec.json (empty when the version has none)."""
    import json
    import tempfile

    import mlflow

    uri = client.get_model_version_download_uri(mv.name, mv.version).rstrip("/") + "/artifacts/spec.json"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        except Exception:  # no bundled spec: the caller falls back to the registration time
            return {}
        with open(path) as fh:
            return json.load(fh)
