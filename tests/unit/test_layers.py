"""Imports point down: a module may import its own layer and the layers below it, never one above.

Parsed from the source (ast), so imports inside functions count too — the lazy imports that keep
the CLI quick are still dependencies. To add a package, place it in LAYERS; to need an upward
import, move the code or define a small protocol in the lower layer that the higher one implements
(as features.stage.MissingVectorFiller and training.booster.BoosterFitter are implemented by
distributed/).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "defectflow"

# Bottom to top. Modules in one layer may import each other: validation, features, inference,
# anomaly, training and evaluation still import one another in both directions (image decoding,
# header checks, the anomaly tap, fine-tuning's splits and AUC), so they share the domain layer.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["defectflow", "errors", "params_check", "params", "atomic", "hashing", "redact", "workdir"]),
    ("domain", ["validation", "features", "inference", "anomaly", "training", "evaluation", "synth"]),
    ("services", ["azure", "distributed", "registry"]),
    ("model users", ["monitoring"]),
    ("delivery", ["scoring", "packaging"]),
    ("composition", ["stages", "pipeline"]),
    ("orchestration", ["orchestration"]),
    ("entry points", ["cli", "serving", "dashboard"]),
]
LAYER_OF = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


def component(module: str) -> str:
    """`defectflow.features.stage` → `features`; the package itself → `defectflow`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "defectflow":  # `from defectflow import atomic`
                out += [(node.lineno, f"defectflow.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in out if name.split(".")[0] in ("defectflow", "flows")]


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_package_has_a_layer():
    components = {component(module_name(p)) for p in package_modules()}
    assert components - set(LAYER_OF) == set(), "place new packages in LAYERS"


def test_imports_point_down():
    upward = []
    for path in package_modules():
        here = component(module_name(path))
        for line, imported in imports_of(path):
            if imported.split(".")[0] == "flows":
                upward.append(f"{path.relative_to(REPO)}:{line} imports {imported} (flows/ are entry points)")
                continue
            there = component(imported)
            if LAYER_OF[there] > LAYER_OF[here]:
                upward.append(f"{path.relative_to(REPO)}:{line} imports {imported} "
                              f"({LAYERS[LAYER_OF[here]][0]} → {LAYERS[LAYER_OF[there]][0]})")
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_the_checker_sees_an_upward_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from defectflow.distributed.executor import is_distributed\n")
    assert imports_of(probe) == [(2, "defectflow.distributed.executor")]
    assert LAYER_OF[component("defectflow.distributed.executor")] > LAYER_OF["features"]
