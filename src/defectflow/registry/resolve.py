"""Resolve a registered model URI to one pinned version, cheaply (no model is loaded).

Batch scoring and the edge exporter both start here: an alias that moves mid-run must not mix
models, so both work on `models:/<name>/<version>`. Kept apart from scoring and edge so that
neither imports the other (edge export used to import scoring, which imports edge).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from defectflow.errors import ConfigError, RegistryUnavailableError
from defectflow.redact import redact_url

MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelVersionRef:
    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def resolve_model_version(uri: str, tracking_uri: str | None = None) -> ModelVersionRef:
    """`models:/<name>@<alias>` or `models:/<name>/<version>` → the version it names now."""
    match = MODELS_URI.match(uri)
    if not match:
        raise ConfigError(f"model URI {uri!r} is malformed; use models:/<name>@<alias> or models:/<name>/<version>")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = match["name"]
    try:
        if match["alias"]:
            version = client.get_model_version_by_alias(name, match["alias"]).version
        else:
            version = client.get_model_version(name, match["version"]).version
    except MlflowException as exc:
        raise RegistryUnavailableError(
            f"cannot resolve {uri} in the registry at {redact_url(client.tracking_uri)}: {exc.message}; "
            "check the model name and alias (defectflow register / promote create them)"
        ) from None
    return ModelVersionRef(name=name, version=str(version))
