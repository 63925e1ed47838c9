"""The training stages, each declared once: what it runs, what it reads and writes, which code decides its result.

Everything that drives the stages is built from `STAGES`: `pipeline.run_pipeline` (the order),
the CLI stage commands (cli/pipeline_cmds.py), the Prefect tasks and their cache keys
(orchestration/), and `dvc.yaml`, which tests/unit/test_stages_contract.py checks against it.

A declaration names
- `params`: the params.yaml sections (and `seed`) that change the stage's result — DVC tracks
  them and the Prefect cache key hashes them;
- `settings`: sections it reads that change only where or how it runs (`executor`), not tracked;
- `reads` / `writes`: `Workdir` property names (`DATA` is the data folder), DVC's deps and outs;
- `code`: the package folders under src/defectflow whose code decides the outputs (DVC deps, so
  editing training/splits.py re-runs train).

Stage functions are imported when a stage runs, so importing this module stays instant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectflow.errors import DataFolderMissingError
from defectflow.params import SECTIONS, Params, RegisterParams
from defectflow.workdir import Workdir

DATA = "data"  # in `reads`: the data folder (images + labels.csv)
SEED = "seed"  # in `params`: the top-level seed


@dataclass(frozen=True)
class StageRun:
    """What every stage of one run shares: the data folder, the work directory, the params and
    the MLflow tracking URI they resolve to (the register stage's target)."""

    data_dir: Path | None
    workdir: Workdir
    params: Params
    progress: bool = True
    tracking_uri: str = field(init=False)

    def __post_init__(self) -> None:
        from defectflow.registry.tracking import tracking_uri

        object.__setattr__(self, "tracking_uri", tracking_uri(self.params.section("register", RegisterParams),
                                                              self.workdir))

    @property
    def data(self) -> Path:
        """The data folder; a clear error when neither --data nor data.dir gave one."""
        if self.data_dir is None:
            raise DataFolderMissingError()
        return Path(self.data_dir)


@dataclass(frozen=True)
class Stage:
    """One stage of the training pipeline (see the module docstring for each field's role)."""

    name: str
    help: str
    run_fn: Callable[[StageRun, Stage], dict[str, Any]]
    describe: Callable[[dict[str, Any]], str]
    params: tuple[str, ...]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    code: tuple[str, ...]
    settings: tuple[str, ...] = ()
    needs_data: bool = False  # the command takes --data (it opens images or records their lineage)
    io: bool = False  # talks to storage or a server that can fail transiently: the flow retries it
    registry: bool = False  # writes to the MLflow registry at run.tracking_uri

    def run(self, run: StageRun) -> dict[str, Any]:
        """Run the stage function on `run` (params sections through `section`, so undeclared ones fail)."""
        return self.run_fn(run, self)

    def section(self, run: StageRun, name: str) -> Any:
        """The typed params section `name`, which the stage must declare in `params` or `settings`
        (a LookupError otherwise: the declaration, and so DVC and the cache keys, would be wrong)."""
        if name not in self.params + self.settings:
            raise LookupError(f"stage {self.name} reads params section {name!r} without declaring it in stages.py")
        return run.params.section(name, SECTIONS[name])

    def seed(self, run: StageRun) -> int:
        if SEED not in self.params:
            raise LookupError(f"stage {self.name} reads the seed without declaring it in stages.py")
        return run.params.seed

    def output_paths(self, workdir: Workdir) -> list[Path]:
        return [getattr(workdir, name) for name in self.writes]

    def outputs_exist(self, workdir: Workdir) -> bool:
        """Every output is there (a folder counts when it holds something)."""
        return all(p.is_file() or (p.is_dir() and any(p.iterdir())) for p in self.output_paths(workdir))


def _validate(run: StageRun, stage: Stage) -> dict[str, Any]:
    from defectflow.validation.stage import validate

    return validate(run.data, run.workdir, stage.section(run, "validate"))


def _featurize(run: StageRun, stage: Stage) -> dict[str, Any]:
    from defectflow.distributed.featurize_dask import vector_filler
    from defectflow.features.stage import featurize

    return featurize(run.data, run.workdir, stage.section(run, "featurize"), stage.seed(run), progress=run.progress,
                     remote=vector_filler(stage.section(run, "executor")), anomaly=stage.section(run, "anomaly"))


def _train(run: StageRun, stage: Stage) -> dict[str, Any]:
    from defectflow.distributed.train_dask import booster_fitter
    from defectflow.training.stage import train

    with booster_fitter(stage.section(run, "executor")) as fit:
        return train(run.workdir, stage.section(run, "train"), stage.seed(run), fit=fit,
                     anomaly=stage.section(run, "anomaly"))


def _evaluate(run: StageRun, stage: Stage) -> dict[str, Any]:
    from defectflow.evaluation.stage import evaluate

    return evaluate(run.workdir, stage.section(run, "evaluate"), stage.section(run, "gate"))


def _register(run: StageRun, stage: Stage) -> dict[str, Any]:
    from defectflow.registry.register import register_model

    # register logs every parameter to MLflow and rebuilds the backbone, so it takes the whole tree;
    # what changes the registered model is tracked through its inputs (model/, metrics/cv.json).
    return register_model(run.data, run.workdir, run.params)


def _validated(report: dict[str, Any]) -> str:
    c = report["counts"]
    return f"validate: {c['total']} rows, {c['ok']} ok, {c['quarantined']} quarantined ({report['share_bad']:.1%})"


def _featurized(s: dict[str, Any]) -> str:
    return (f"featurize: {s['n_images']} images, {s['n_computed']} computed "
            f"({s['images_per_s']} img/s on {s['device']}), {s['n_cached']} cached")


def _trained(s: dict[str, Any]) -> str:
    return (f"train: {s['n_labelled']} labelled images, {len(s['folds'])} folds, "
            f"final model {s['final_rounds']} rounds → {s['model_dir']}")


def _evaluated(m: dict[str, Any]) -> str:
    return (f"evaluate: mean AUC {m['mean_auc']:.4f}, min fold AUC {m['min_auc']:.4f}, "
            f"gate {'passed' if m['gate']['passed'] else 'FAILED'}")


def _registered(r: dict[str, Any]) -> str:
    return (f"register: run {r['run_id']} in {r['tracking_uri']}; "
            + (f"{r['model_name']} version {r['version']} (alias challenger)"
               if r["version"] else "gate failed, no model version registered"))


STAGES: tuple[Stage, ...] = (
    Stage("validate", "check every image and label; quarantine bad rows with a reason", _validate, _validated,
          params=("validate",), reads=(DATA,), writes=("manifest", "reports"),
          code=("features", "inference", "validation"), needs_data=True, io=True),
    Stage("featurize", "compute CNN features for new images (content-addressed cache)", _featurize, _featurized,
          params=(SEED, "featurize", "anomaly"), settings=("executor",), reads=("manifest",),
          writes=("feature_store", "features", "features_spec"),
          code=("anomaly", "distributed", "evaluation", "features", "inference", "training", "validation"),
          needs_data=True, io=True),
    Stage("train", "time-split cross-validation + final LightGBM model", _train, _trained,
          params=(SEED, "train", "anomaly"), settings=("executor",), reads=("manifest", "features", "features_spec"),
          writes=("model_dir", "cv_dir"),
          code=("anomaly", "distributed", "evaluation", "features", "inference", "training", "validation")),
    Stage("evaluate", "fold AUCs, threshold, review reduction, plots, gate verdict", _evaluate, _evaluated,
          params=("evaluate", "gate"), reads=("cv_dir",), writes=("cv_metrics", "plots"),
          code=("anomaly", "evaluation")),
    Stage("register", "log the run to MLflow; register the model if the gate passed", _register, _registered,
          params=("register",), reads=("model_dir", "cv_metrics"), writes=("registration",),
          code=("evaluation", "features", "inference", "registry", "training", "validation"), needs_data=True, io=True,
          registry=True),
)


def stage(name: str) -> Stage:
    """The declaration of stage `name`."""
    for declared in STAGES:
        if declared.name == name:
            return declared
    raise KeyError(name)


def check_registry(run: StageRun, stages: tuple[Stage, ...] = STAGES) -> None:
    """Fail (RegistryUnavailableError) before any work when one of `stages` writes to an MLflow
    registry that does not answer: finding out after minutes of featurization would waste them."""
    from defectflow.registry.client import Registry

    if any(s.registry for s in stages):
        Registry(run.tracking_uri).reachable()
