"""Every exit status lives in defectflow.errors.ExitCode and in the README's table, row for row.

The package is read as source (ast), not imported, so a module nobody imports in the unit tests
cannot hide a stray number.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from defectflow.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(REPO / "src/defectflow").rglob("*.py"), *(REPO / "flows").glob("*.py")])
# Modules whose `-> int` functions return process exit statuses (command functions and entry points).
ENTRY_POINTS = [p for p in SOURCES if "cli" in p.relative_to(REPO).parts or p.name == "__main__.py"]


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"


def _int_literals(node: ast.AST) -> list[int]:
    return [n.value for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, int) and not isinstance(n.value, bool)]


def _is_exit_code_member(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ExitCode"
            and node.attr in ExitCode.__members__)


def test_error_classes_take_their_exit_code_from_the_table():
    wrong = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) else []
            for target in targets:
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
                if (name == "exit_code" or name.startswith("EXIT_")) and not _is_exit_code_member(node.value):
                    wrong.append(_where(path, node))
    assert not wrong, f"exit codes must be ExitCode members (defectflow/errors.py), not numbers: {wrong}"


def test_literal_exit_statuses_are_declared():
    declared = {int(code) for code in ExitCode}
    stray = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "exit"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "sys"):
                stray += [f"{_where(path, node)} sys.exit({v})" for v in _int_literals(node) if v not in declared]
        if path not in ENTRY_POINTS:
            continue
        for func in ast.walk(tree):
            if isinstance(func, ast.FunctionDef) and isinstance(func.returns, ast.Name) and func.returns.id == "int":
                for ret in ast.walk(func):
                    if isinstance(ret, ast.Return) and ret.value is not None:
                        stray += [f"{_where(path, ret)} return {v}" for v in _int_literals(ret.value)
                                  if v not in declared]
    assert not stray, f"exit statuses not declared in defectflow.errors.ExitCode: {stray}"


def test_readme_table_lists_every_exit_code_with_its_meaning():
    readme = (REPO / "README.md").read_text()
    table = readme.split("| code | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = {int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+?) \|$", table, re.MULTILINE)}
    assert rows == {int(code): code.meaning for code in ExitCode}


def test_codes_are_distinct_and_the_usual_ones_keep_their_numbers():
    assert len({int(c) for c in ExitCode}) == len(ExitCode)
    assert (ExitCode.OK, ExitCode.ERROR, ExitCode.CONFIG, ExitCode.GATE_FAILED, ExitCode.REGISTRY_UNAVAILABLE,
            ExitCode.AUC_ALERT, ExitCode.INGEST_INCOMPLETE, ExitCode.BLOB_ACCESS) == (0, 1, 2, 4, 7, 8, 11, 12)
