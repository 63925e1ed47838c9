"""What things are called in the MLflow registry: aliases, version tags, run metrics, and how one
registered version is named (`ModelVersionRef`, `models:/<name>/<version>`).

Every module that reads or writes these names imports them from here, so a writer and its
readers cannot drift apart. Nothing here talks to MLflow (the dashboard imports it without it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Aliases: register points `challenger` at a new version; promotion moves `champion`.
CHAMPION = "champion"
CHALLENGER = "challenger"
# The stage promotion also moves, for tools that still read stages (deprecated in MLflow 3).
PRODUCTION_STAGE = "Production"

# Version tags set by register.
GATE_TAG = "gate_passed"              # "true" when the evaluation gate passed
MEAN_AUC_TAG = "mean_auc"
THRESHOLD_TAG = "threshold"
RUN_ID_TAG = "run_id"
TRAINED_UNTIL_TAG = "trained_until"   # capture time of the newest image the model was trained on
# Version tag set by packaging: the pushed container image, repo@sha256:… — the service image's;
# other kinds add their kind (`container_image.batch`), so shipping one never overwrites another.
DIGEST_TAG = "container_image"


def digest_tag(kind: str) -> str:
    """The model-version tag recording the pushed image of `kind` (packaging.image.KINDS)."""
    return DIGEST_TAG if kind == "service" else f"{DIGEST_TAG}.{kind}"

# Promotion history: one registered-model tag per decision, and the latest decision on each version.
PROMOTION_LOG_TAG_PREFIX = "promotion.log."
PROMOTION_VERSION_TAG_PREFIX = "promotion."

# Run metrics logged by register: the mean time-split CV AUC (the dashboard's AUC history reads it) and
# the operating threshold at full precision (the dashboard tells a classifier fail from a novelty one by it).
AUC_METRIC = "mean_auc"
THRESHOLD_METRIC = "threshold"

MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelVersionRef:
    """One registered model version, pinned (an alias resolved to the version it named)."""

    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def key(self) -> str:
        """`<name>/<version>`: how forms and tables name the version."""
        return f"{self.name}/{self.version}"

    @classmethod
    def from_key(cls, key: str) -> ModelVersionRef | None:
        """The version a `key` names; None when it is not `<name>/<version>`."""
        name, sep, version = key.rpartition("/")
        return cls(name, version) if sep and name and version else None
