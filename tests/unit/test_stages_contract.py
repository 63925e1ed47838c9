"""dvc.yaml, the code and the stage declarations (defectflow.stages) say the same thing.

For every declared stage: the DVC command, its deps (the declared inputs plus the code folders),
params and outs match the declaration; the declared code folders are exactly the packages the
stage's code imports (so an edit under one of them re-runs the stage, and only those), and every
Workdir path named in a declaration exists.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest
import yaml

from defectflow.params import SECTIONS
from defectflow.stages import DATA, SEED, STAGES, Stage
from defectflow.stages import stage as stage_named
from defectflow.workdir import Workdir

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "defectflow"
WORKDIR = Workdir("${data.workdir}")


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def out_paths(entries: list) -> set[str]:
    """DVC lists an out as a plain path or as {path: options}."""
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries}


def module_imports(module: str) -> set[str]:
    """The defectflow modules `module` imports anywhere (module level or inside functions)."""
    path = PACKAGE.joinpath(*module.split(".")[1:])
    source = (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()
    return imported_modules(ast.parse(source))


def imported_modules(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("defectflow"):
            for alias in node.names:  # `from defectflow.evaluation import plots` imports a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if module_exists(candidate) else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("defectflow")}
    return {m for m in found if module_exists(m)}


def module_exists(module: str) -> bool:
    path = PACKAGE.joinpath(*module.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def code_packages(stage: Stage) -> set[str]:
    """Package folders reached from the modules the stage's run function imports (transitively).

    Single-file modules at the top of the package (params.py, errors.py, atomic.py, …) are the
    shared foundation of every stage, not listed per stage."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(stage.run_fn)))
    seen: set[str] = set()
    todo = list(imported_modules(tree))
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += module_imports(module)
    return {m.split(".")[1] for m in seen if (PACKAGE / m.split(".")[1]).is_dir()}


def dvc_path(stage_input: str) -> str:
    return "${data.dir}" if stage_input == DATA else getattr(WORKDIR, stage_input).as_posix()


def test_dvc_runs_the_declared_stages_in_order():
    declared = [s.name for s in STAGES]
    assert [name for name in dvc_stages() if name in declared] == declared
    assert set(dvc_stages()) - set(declared) == {"synth"}  # the demo data, not a training stage


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_dvc_stage_matches_its_declaration(stage: Stage):
    dvc = dvc_stages()[stage.name]
    data = " --data ${data.dir}" if stage.needs_data else ""
    assert dvc["cmd"] == f"defectflow {stage.name}{data} --workdir ${{data.workdir}}"
    expected_deps = [dvc_path(name) for name in stage.reads] + [f"src/defectflow/{pkg}" for pkg in stage.code]
    assert sorted(dvc.get("deps", [])) == sorted(expected_deps)
    assert sorted(dvc.get("params", [])) == sorted(stage.params)
    outs = out_paths(dvc.get("outs", [])) | out_paths(dvc.get("metrics", [])) | out_paths(dvc.get("plots", []))
    assert outs == {dvc_path(name) for name in stage.writes}


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_declared_code_folders_are_what_the_stage_imports(stage: Stage):
    assert sorted(stage.code) == sorted(code_packages(stage))
    assert "training" in stage_named("train").code  # editing training/splits.py re-runs train


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_declared_names_exist(stage: Stage):
    for name in (*stage.reads, *stage.writes):
        assert name == DATA or isinstance(getattr(type(WORKDIR), name, None), property), name
    for name in (*stage.params, *stage.settings):
        assert name == SEED or name in SECTIONS, name
    assert not set(stage.params) & set(stage.settings)


def test_each_output_has_one_writer_and_inputs_come_from_earlier_stages():
    written: set[str] = set()
    for stage in STAGES:
        assert not set(stage.writes) & written, f"{stage.name} rewrites another stage's output"
        assert set(stage.reads) - {DATA} <= written, f"{stage.name} reads what no earlier stage writes"
        written |= set(stage.writes)


def test_a_stage_cannot_read_an_undeclared_section():
    from defectflow.params import Params
    from defectflow.stages import StageRun

    run = StageRun(None, Workdir("unused"), Params({}))
    evaluate = stage_named("evaluate")
    assert evaluate.section(run, "gate").min_auc > 0
    with pytest.raises(LookupError, match="without declaring"):
        evaluate.section(run, "train")
    with pytest.raises(LookupError, match="without declaring"):
        evaluate.seed(run)
