"""Load `params.yaml`, apply `--set key=value` overrides, and hand each stage its typed section.

The YAML file is the single source of configuration (DVC reads the same file). Stages never
read YAML themselves: they receive the dataclass for their section, so a typo in a key fails
early with the name of the key instead of being silently ignored.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from defectflow.errors import ConfigError

DEFAULT_PARAMS_FILE = Path("params.yaml")


@dataclass(frozen=True)
class SynthParams:
    """The demo dataset; the field names are the keyword arguments of defectflow.synth.generate."""

    n: int = 1200
    seed: int = 7
    image_size: int = 160
    days: float = 42
    start: str = "2026-09-01"
    defect_rate: float = 0.3
    label_noise: float = 0.01
    drift_from: str | None = None
    drift_kind: str = "lighting"
    unlabelled_share: float = 0.0
    cameras: int = 3


@dataclass(frozen=True)
class ValidateParams:
    max_bad_share: float = 0.05
    max_pixels: int = 40_000_000
    min_side: int = 16
    max_side: int = 12_000
    max_future_minutes: int = 10
    min_class_share: float = 0.02
    workers: int = 8  # threads for the per-image checks (I/O bound: hashing and decoding)


@dataclass(frozen=True)
class FeaturizeParams:
    backbone: str = "mobilenet_v2"
    weights: str = "IMAGENET1K_V1"
    image_size: int = 224
    batch_size: int = 32
    num_workers: int = 2
    device: str = "auto"
    engine: str = "auto"  # auto | torch | onnxruntime | openvino (defectflow.inference.engine)
    quantization: str = "none"  # none | int8 (opt-in, needs engine onnxruntime/openvino; docs/performance.md)
    calibration_images: int = 128  # int8: the earliest labelled images calibrate the quantization


@dataclass(frozen=True)
class TrainParams:
    n_folds: int = 4
    gap_days: float = 0.0
    min_train: int = 80
    min_test: int = 30
    val_fraction: float = 0.15
    early_stopping_rounds: int = 100
    lgbm: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutorParams:
    """Where featurize and train run: in this process, on a Dask LocalCluster, or on an existing
    Dask scheduler (e.g. Dask on Kubernetes with GPU workers). See docs/dask.md."""

    kind: str = "local"             # local | local_cluster | address
    address: str | None = None      # scheduler address for kind=address (tcp://host:8786); else $DASK_SCHEDULER_ADDRESS
    n_workers: int = 2              # local_cluster: worker processes
    threads_per_worker: int = 1     # local_cluster: threads (= torch threads, LightGBM threads) per worker
    shard_size: int = 64            # images per featurization task (a multiple of featurize.batch_size keeps batches whole)
    task_retries: int = 2           # a shard that raised is re-run this many times (a dead worker's shards are always re-run)


@dataclass(frozen=True)
class EvaluateParams:
    target_fail_recall: float = 0.95


@dataclass(frozen=True)
class GateParams:
    min_auc: float = 0.90
    min_fold_auc: float = 0.85


@dataclass(frozen=True)
class RegisterParams:
    model_name: str = "defectflow-classifier"
    experiment: str = "defectflow"
    tracking_uri: str | None = None


@dataclass(frozen=True)
class PromoteParams:
    """Champion/challenger rule: how much worse on the newest window a challenger may be."""

    tolerance: float = 0.01       # AUC points the challenger may trail the champion by
    min_window: int = 20          # fewer labelled rows in the newest window → cannot compare


@dataclass(frozen=True)
class AlertsParams:
    """Monitoring verdict and where the alert goes (a Prefect notification block)."""

    min_auc: float = 0.90
    min_count: int = 30           # labelled images since training needed before AUC is judged
    notification_block: str = "custom-webhook/defectflow-alerts"  # <block type slug>/<block name>
    event: str = "defectflow.monitoring.auc-below-threshold"
    retrain_deployment: str | None = "defectflow-training/nightly-retrain"
    experiment: str = "defectflow-monitoring"


@dataclass(frozen=True)
class ScoreParams:
    """Batch scoring (defectflow score, flows/scoring.py)."""

    model: str = "models:/defectflow-classifier@champion"  # models:/ URI or an ONNX edge bundle folder
    results_url: str | None = None  # None → $DEFECTFLOW_RESULTS_URL, else sqlite:///<workdir>/results.db
    batch_size: int = 32            # images per model call; results are committed after each batch
    blob_cache: str | None = None   # where blob inputs are downloaded; None → <workdir>/blob-cache


@dataclass(frozen=True)
class DashboardParams:
    """The operator dashboard (mounted by the serving app, or `defectflow dashboard`)."""

    page_size: int = 100            # rows per table
    thumbnail_px: int = 192         # longest side of a thumbnail
    registry_cache_seconds: float = 60.0  # how long the MLflow model history is reused between page loads
    image_roots: list[str] = field(default_factory=list)  # extra folders thumbnails may be read from


@dataclass(frozen=True)
class AzureParams:
    """Blob ingestion settings (no secrets: credentials come from env vars, see docs/azure.md)."""

    container: str | None = None
    prefix: str = ""
    account_url: str | None = None      # non-secret endpoint; else $AZURE_STORAGE_ACCOUNT_URL
    auth: str = "auto"                   # auto | connection_string | account_key | sas | default
    max_workers: int = 8
    retries: int = 5                     # azure-core retries per request
    retry_backoff_s: float = 1.0
    retry_backoff_base: float = 2.0
    retry_jitter_s: float = 0.5
    file_attempts: int = 3               # whole-file attempts on transient errors (after azure-core's)
    connect_timeout_s: float = 20.0
    read_timeout_s: float = 120.0
    image_extensions: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
    labels_blob_name: str = "labels.csv"
    use_blob_metadata: bool = True       # label/captured_at/board_id/camera_id from blob metadata or index tags
    state_flush_s: float = 2.0           # checkpoint the ingestion state at most this often


T = TypeVar("T")


class Params:
    """The parsed params tree with typed access to each stage's section."""

    def __init__(self, tree: dict[str, Any]):
        self.tree = tree

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> Params:
        """Read `path` (default ./params.yaml, else the package defaults) and apply overrides."""
        path = Path(path) if path else DEFAULT_PARAMS_FILE
        if path.exists():
            try:
                tree = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        elif path == DEFAULT_PARAMS_FILE:
            tree = {}
        else:
            raise ConfigError(f"params file {path} does not exist")
        params = cls(tree)
        for item in overrides or []:
            params = params.with_override(item)
        return params

    def with_override(self, assignment: str) -> Params:
        """Return a copy with `a.b.c=value` applied; the value is parsed as YAML (so 3, 0.5, true, null work)."""
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value (for example train.n_folds=3), got {assignment!r}")
        tree = copy.deepcopy(self.tree)
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is a value, not a section")
        node[leaf] = yaml.safe_load(raw)
        return Params(tree)

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.tree
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def section(self, name: str, cls: type[T]) -> T:
        """Build the dataclass `cls` from section `name`, rejecting unknown keys."""
        raw = self.tree.get(name) or {}
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                f"unknown key(s) in params section '{name}': {', '.join(unknown)}; "
                f"known keys are {', '.join(sorted(known))}"
            )
        try:
            return cls(**raw)
        except TypeError as exc:
            raise ConfigError(f"params section '{name}': {exc}") from None

    @property
    def seed(self) -> int:
        return int(self.tree.get("seed", 42))

    def flat(self) -> dict[str, Any]:
        """Flatten to dotted keys (for MLflow params)."""
        out: dict[str, Any] = {}

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            else:
                out[prefix] = node

        walk("", self.tree)
        return out
