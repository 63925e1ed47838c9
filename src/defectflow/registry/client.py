"""The one way into the MLflow tracking server and model registry: `Registry`.

A `Registry` is built from a tracking URI (`Registry.from_params` resolves it the usual way:
$MLFLOW_TRACKING_URI, then params, then a SQLite file in the workdir). It owns the MlflowClient
for that URI, the fail-fast reachability check, pointing MLflow's module-level API (pyfunc
loading, artifact downloads) at the same URI, resolving `models:/…` to one pinned version, the
champion, and loading and scoring a version. MLflow is imported lazily, on first use, so the
CLI and the dashboard import this module without paying for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from defectflow.errors import ConfigError, RegistryUnavailableError
from defectflow.params import Params, RegisterParams
from defectflow.redact import redact_url
from defectflow.registry.names import CHAMPION, MODELS_URI, TRAINED_UNTIL_TAG, ModelVersionRef
from defectflow.registry.tracking import point_mlflow_at, tracking_reachable, tracking_uri
from defectflow.workdir import Workdir

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.pyfunc import PyFuncModel


class Registry:
    """The MLflow tracking server / model registry at one URI (None: MLflow's own default)."""

    def __init__(self, tracking_uri: str | None = None):
        self.tracking_uri = tracking_uri

    @classmethod
    def from_params(cls, params: Params, workdir: Workdir) -> Registry:
        """The registry the params and environment name for this workdir."""
        return cls(tracking_uri(params.section("register", RegisterParams), workdir))

    @cached_property
    def client(self) -> MlflowClient:
        """The MlflowClient for this URI, tracking and registry alike (opened on first use)."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def reachable(self) -> Registry:
        """This registry, after checking it answers (RegistryUnavailableError, exit 7, at once otherwise)."""
        if self.tracking_uri:
            tracking_reachable(self.tracking_uri)
        return self

    def activate(self) -> None:
        """Point MLflow's module-level API (pyfunc loading, artifacts, runs) at this registry."""
        if self.tracking_uri:
            point_mlflow_at(self.tracking_uri)

    def resolve(self, models_uri: str) -> ModelVersionRef:
        """`models:/<name>@<alias>` or `models:/<name>/<version>` → the version it names now, cheaply
        (no model is loaded). Callers work on the pinned version, so an alias moving mid-run cannot mix models."""
        match = MODELS_URI.match(models_uri)
        if not match:
            raise ConfigError(f"model URI {models_uri!r} is malformed; use models:/<name>@<alias> "
                              "or models:/<name>/<version>")
        from mlflow.exceptions import MlflowException

        client = self.client
        name = match["name"]
        try:
            if match["alias"]:
                version = client.get_model_version_by_alias(name, match["alias"]).version
            else:
                version = client.get_model_version(name, match["version"]).version
        except MlflowException as exc:
            raise RegistryUnavailableError(
                f"cannot resolve {models_uri} in the registry at {redact_url(client.tracking_uri)}: {exc.message}; "
                "check the model name and alias (defectflow register / promote create them)"
            ) from None
        return ModelVersionRef(name=name, version=str(version))

    def champion(self, name: str) -> ModelVersion | None:
        """The version the `champion` alias points at, or None when there is none yet."""
        from mlflow.exceptions import MlflowException

        client = self.client
        try:
            return client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self.client.delete_registered_model_alias(name, alias)

    def tag_version(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, value)

    def model_files(self, ref: ModelVersionRef) -> set[str]:
        """Names of the files at the top of the version's model folder in the artifact store."""
        import mlflow

        self.activate()
        uri = self.client.get_model_version_download_uri(ref.name, ref.version)
        return {a.path.rsplit("/", 1)[-1] for a in mlflow.artifacts.list_artifacts(artifact_uri=uri)}

    def download_artifacts(self, ref: ModelVersionRef, into: Path) -> Path:
        """Download the version's model folder into `into`; returns the local folder."""
        import mlflow

        self.activate()
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=str(into)))

    def load_model(self, ref: ModelVersionRef) -> PyFuncModel:
        """The version's pyfunc, loaded from this registry."""
        import mlflow

        self.activate()
        return mlflow.pyfunc.load_model(ref.uri)

    def fail_probabilities(self, ref: ModelVersionRef, images: list[str]) -> list[float]:
        """The version's fail probability for each image path, in order (the pyfunc loads for this call)."""
        import pandas as pd

        frame = self.load_model(ref).predict(pd.DataFrame({"image": images}))
        return frame["fail_probability"].astype(float).tolist()


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
    return dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=dt.UTC)
