"""Load `params.yaml`, apply `--set key=value` overrides, and hand each stage its typed section.

The YAML file is what DVC, the CLI and the flows read; the dataclasses below are its packaged
defaults and hold exactly the shipped file's values (tests/unit/test_params_defaults.py proves it), so
running without ./params.yaml trains the same model. Stages never read YAML themselves: they receive
the dataclass for their section, so a typo in a key or a section fails early with its name instead
of being silently ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from defectflow.errors import ConfigError, DataFolderMissingError
from defectflow.params_check import check_section, check_tree

log = logging.getLogger(__name__)

DEFAULT_PARAMS_FILE = Path("params.yaml")
DEFAULT_SEED = 42


@dataclass(frozen=True)
class DataParams:
    """Where the images are and where every stage output lands: the defaults of `--data` / `--workdir`
    (and of the flows' `data_dir` / `workdir`). `dir: null` makes every command ask for `--data`."""

    dir: str | None = "data/demo"       # images + labels.csv
    workdir: str = "work/demo"

    def data_dir(self, given: str | Path | None = None) -> Path:
        """`given` (a --data argument), else `dir`; DataFolderMissingError when neither names a folder."""
        chosen = given or self.dir
        if not chosen:
            raise DataFolderMissingError()
        return Path(chosen)

    def work_dir(self, given: str | Path | None = None) -> Path:
        """`given` (a --workdir argument), else `workdir`."""
        return Path(given or self.workdir)


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
class FinetuneParams:
    """featurize.mode=finetune: how the ImageNet backbone is fine-tuned on labelled images
    before it featurizes them (defectflow.features.finetune)."""

    epochs: int = 5
    lr: float = 1e-3                # peak learning rate of the one-cycle schedule (AdamW)
    weight_decay: float = 1e-4
    batch_size: int = 32
    image_size: int | None = None   # training resolution; null → featurize.image_size
    val_fraction: float = 0.15      # newest share of the rows: early stopping on its AUC (0: every epoch, all rows)
    patience: int = 2               # epochs without a better validation AUC before stopping
    freeze_blocks: int = 0          # the first N blocks of the backbone keep their ImageNet weights and statistics
    # Compute the frozen blocks' output once per image and train only the rest on it (flips and 90°
    # turns act on that output; gain, contrast, blur and noise cannot): the frozen part's forward
    # pass leaves every epoch, most of the time on a CPU when it is a 300 px stem.
    cache_frozen: bool = False
    # Fine-tune this many times (seeds seed, seed+1, …) and average the weights into the one backbone
    # that is shipped (a "model soup"): one network to serve, the seed-to-seed swing averaged out.
    average_seeds: int = 1
    class_weighted: bool = True     # BCE pos_weight = n_pass / n_fail
    hflip: bool = True
    vflip: bool = True
    rot90: bool = True              # only where the product allows (square cells, boards)
    brightness: float = 0.2         # ± gain jitter
    contrast: float = 0.2
    blur_p: float = 0.2             # share of images slightly blurred
    noise_std: float = 0.02         # Gaussian noise, in [0, 1] pixel units
    # A training window with fewer labelled rows keeps the frozen ImageNet features: fine-tuning on
    # 240-480 rows lowered fold 1 on the demo (0.90 → 0.79) and ELPV (0.63 → 0.55), README "Model quality".
    min_rows: int = 500

    def __post_init__(self) -> None:
        if self.average_seeds < 1:
            raise ConfigError(f"featurize.finetune.average_seeds={self.average_seeds}: fine-tune at least once (1)")


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
    mode: str = "frozen"            # frozen | finetune (fine-tune `weights` on the labelled rows first)
    finetune: dict[str, Any] = field(default_factory=lambda: dataclasses.asdict(FinetuneParams()))

    def finetune_params(self) -> FinetuneParams:
        """The typed `featurize.finetune` block (unknown keys are named)."""
        known = {f.name for f in dataclasses.fields(FinetuneParams)}
        unknown = sorted(set(self.finetune or {}) - known)
        if unknown:
            raise ConfigError(f"unknown key(s) in params section 'featurize.finetune': {', '.join(unknown)}; "
                              f"known keys are {', '.join(sorted(known))}")
        return FinetuneParams(**(self.finetune or {}))


@dataclass(frozen=True)
class AnomalyParams:
    """The anomaly head on the featurizer's backbone pass (docs/anomaly.md)."""

    enabled: bool = True
    layer: str = "auto"             # module giving the patch map; auto: anomaly.taps.DEFAULT_LAYERS (stride 16)
    method: str = "padim"           # padim (Gaussian per location) | patchcore (coreset + nearest neighbour)
    coreset_size: int = 1000        # PatchCore memory-bank rows kept: caps the model's memory
    max_candidates: int = 20000     # patches sampled from the good images before thinning: caps fitting memory
    cross_fit: int = 3              # splits (by board) giving out-of-sample scores to a training window's images
    as_feature: bool = False        # the score as one more LightGBM feature (off: bench/results/anomaly-auc.json)
    novelty_quantile: float = 0.99  # score quantile of the training pass images above which an image is `novel`


@dataclass(frozen=True)
class TrainParams:
    n_folds: int = 4
    gap_days: float = 0.0
    min_train: int = 80
    min_test: int = 30
    val_fraction: float = 0.15
    early_stopping_rounds: int = 100
    min_rounds: int = 50            # a fold whose early stopping stops sooner is refit with this many rounds
    # After early stopping on the inner split, refit each fold's model on its whole training window
    # with the chosen rounds (as the final model is fitted on everything); false: the model trained
    # on the fit part only is the fold's model.
    fold_refit: bool = False
    # Passed to LightGBM as given (a params file's block replaces this one whole); n_estimators = maximum rounds.
    lgbm: dict[str, Any] = field(default_factory=lambda: {
        "objective": "binary", "n_estimators": 600, "learning_rate": 0.03, "num_leaves": 15,
        "min_child_samples": 20, "colsample_bytree": 0.1, "subsample": 0.8, "subsample_freq": 1,
        "reg_lambda": 1.0, "n_jobs": 2,
    })


@dataclass(frozen=True)
class ExecutorParams:
    """Where featurize and train run: in this process, on a Dask LocalCluster, or on an existing
    Dask scheduler (e.g. Dask on Kubernetes with GPU workers). See docs/dask.md."""

    kind: str = "local"             # local | local_cluster | address
    address: str | None = None      # scheduler address for kind=address (tcp://host:8786); else $DASK_SCHEDULER_ADDRESS
    n_workers: int = 2              # local_cluster: worker processes
    threads_per_worker: int = 1     # local_cluster: threads (= torch threads, LightGBM threads) per worker
    shard_size: int = 64            # images per featurization task (a multiple of featurize.batch_size: whole batches)
    task_retries: int = 2           # re-runs of a shard that raised (a dead worker's shards are always re-run)


@dataclass(frozen=True)
class EvaluateParams:
    target_fail_recall: float = 0.95
    threshold_method: str = "lower_bound"  # empirical | conformal | lower_bound; see evaluation/metrics.py
    recall_margin: float = 0.0           # the threshold rule aims at target + margin
    recall_confidence: float = 0.95      # lower_bound: P(recall ≥ target) over the calibration fails
    bootstrap_rounds: int = 1000         # resamples for the fold AUC 95 % intervals
    bootstrap_seed: int = 0


@dataclass(frozen=True)
class GateParams:
    min_auc: float = 0.90
    min_fold_auc: float = 0.85
    recall_tolerance: float = 0.02  # realized forward fail recall must reach target - this on every fold


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
    drift_event: str = "defectflow.monitoring.camera-drift"  # emitted per drifted camera; automations/drift-alert.yaml
    retrain_deployment: str | None = "defectflow-training/nightly-retrain"
    experiment: str = "defectflow-monitoring"


@dataclass(frozen=True)
class DriftParams:
    """Drift on unlabelled images, per camera: the last window against the training window."""

    window_days: float = 1.0        # the recent window: this much data before the newest image
    alpha: float = 0.01             # false-alarm budget per camera and check (Bonferroni over the six tests)
    min_images: int = 8             # fewer recent (or reference) images → insufficient_data, no verdict
    max_per_side: int = 150         # images per side the embedding test uses (its cost is quadratic)
    permutations: int = 1000        # MMD permutation resamples (p can only reach 1/(1+this): keep it ≫ 6/alpha)
    pca_dims: int = 16              # principal components of the reference embeddings compared


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


def _as_yaml(node: Any) -> Any:
    """`node` with tuples as lists, the only sequence YAML has."""
    if isinstance(node, dict):
        return {key: _as_yaml(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_as_yaml(value) for value in node]
    return node

# Every section with a dataclass, checked together by Params.check.
SECTIONS: dict[str, type] = {
    "data": DataParams, "synth": SynthParams, "validate": ValidateParams, "featurize": FeaturizeParams,
    "train": TrainParams, "executor": ExecutorParams, "evaluate": EvaluateParams, "gate": GateParams,
    "register": RegisterParams, "promote": PromoteParams, "alerts": AlertsParams, "score": ScoreParams,
    "dashboard": DashboardParams, "azure": AzureParams, "anomaly": AnomalyParams, "drift": DriftParams,
}


class Params:
    """The parsed params tree with typed access to each stage's section."""

    def __init__(self, tree: dict[str, Any]):
        self.tree = tree

    @classmethod
    def defaults(cls) -> Params:
        """The packaged defaults as a full tree, as YAML would give it (lists, not tuples): the tree of the
        shipped params.yaml."""
        return cls({"seed": DEFAULT_SEED, **{name: _as_yaml(dataclasses.asdict(section()))
                                             for name, section in SECTIONS.items()}})

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> Params:
        """Read `path`, apply overrides, check every section.

        A named file must exist. Without one, ./params.yaml is read when it is there; otherwise the
        packaged defaults are used, and a warning says so (they equal the shipped params.yaml).
        """
        if not path and not DEFAULT_PARAMS_FILE.exists():
            log.warning("no %s in %s: using the packaged defaults (the values of the shipped params.yaml); "
                        "pass --params FILE to use another file", DEFAULT_PARAMS_FILE, Path.cwd())
            params = cls.defaults()
        else:
            params = cls(cls._read(Path(path) if path else DEFAULT_PARAMS_FILE))
        for item in overrides or []:
            params = params.with_override(item)
        return params.check()

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        if not path.exists():
            raise ConfigError(f"params file {path} does not exist: pass --params FILE with an existing file "
                              f"(the repository's params.yaml lists every setting)")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path} must be a mapping of sections (seed, data, train, ...), "
                              f"not {type(tree).__name__}")
        return tree

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
            built = cls(**raw)
        except TypeError as exc:
            raise ConfigError(f"params section '{name}': {exc}") from None
        check_section(name, built)
        return built

    def check(self) -> Params:
        """Check the top level (known sections only) and build every section (params_check), so bad values
        fail before any stage runs."""
        check_tree(self.tree, sorted(SECTIONS))
        for name, cls in SECTIONS.items():
            self.section(name, cls)
        return self

    @property
    def seed(self) -> int:
        return int(self.tree.get("seed", DEFAULT_SEED))

    @property
    def data(self) -> DataParams:
        """The `data` section: where the images are and where stage outputs go."""
        return self.section("data", DataParams)

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
