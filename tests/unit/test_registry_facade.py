"""The registry facade: one place builds the MLflow client and points MLflow at a URI, AUC is one
function, and the registry package depends only on layers below it.

The contract checks read the source (every import and call, including the lazy ones inside
functions), so a new `MlflowClient(...)` or `roc_auc_score(...)` elsewhere fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from defectflow.errors import ConfigError
from defectflow.registry.client import Registry
from defectflow.registry.names import CHAMPION, ModelVersionRef

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "defectflow"


def _modules() -> dict[str, ast.Module]:
    """The package's modules (keyed relative to it) and the Prefect flows (keyed flows/…)."""
    paths = {str(p.relative_to(PACKAGE)): p for p in sorted(PACKAGE.rglob("*.py"))}
    paths |= {str(p.relative_to(REPO)): p for p in sorted((REPO / "flows").glob("*.py"))}
    return {name: ast.parse(path.read_text(), str(path)) for name, path in paths.items()}


def _called(tree: ast.Module, name: str) -> bool:
    """Whether `tree` calls `name` (a bare name or the last part of an attribute: mlflow.set_tracking_uri)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if ((isinstance(func, ast.Name) and func.id == name)
                    or (isinstance(func, ast.Attribute) and func.attr == name)):
                return True
    return False


def _imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(("call", "allowed"), [
    ("MlflowClient", {"registry/client.py"}),
    ("set_tracking_uri", {"registry/tracking.py"}),
    ("set_registry_uri", {"registry/tracking.py"}),
    ("roc_auc_score", {"evaluation/metrics.py"}),
])
def test_one_module_owns_each_registry_and_auc_call(call, allowed):
    callers = {name for name, tree in _modules().items() if _called(tree, call)}
    assert callers <= allowed, f"{call}(...) outside {sorted(allowed)}: {sorted(callers - allowed)}"


def test_registry_and_edge_import_nothing_above_them():
    above_registry = ("cli", "dashboard", "edge", "monitoring", "packaging", "scoring", "serving")
    for name, tree in _modules().items():
        imported = _imports(tree)
        if name.startswith("registry/"):
            bad = {m for m in imported if m.split(".")[:2] in (["defectflow", top] for top in above_registry)}
            assert not bad, f"{name} imports {sorted(bad)}: the registry sits below its users"
        if name.startswith("edge/"):
            bad = {m for m in imported if m.startswith("defectflow.scoring")}
            assert not bad, f"{name} imports {sorted(bad)}: scoring uses edge bundles, not the other way round"


def test_model_version_ref_names_and_keys():
    ref = ModelVersionRef("defect-classifier", "3")
    assert ref.uri == "models:/defect-classifier/3"
    assert ModelVersionRef.from_key(ref.key) == ref
    assert ModelVersionRef.from_key("no-version") is None
    assert ModelVersionRef.from_key("name/") is None


def test_each_image_kind_records_its_digest_under_its_own_tag():
    from defectflow.packaging.image import KINDS
    from defectflow.registry.names import DIGEST_TAG, digest_tag

    assert digest_tag("service") == DIGEST_TAG  # what tools reading the service image's digest expect
    assert len({digest_tag(kind) for kind in KINDS}) == len(KINDS)  # shipping a batch image keeps the service's


def test_malformed_models_uri_is_a_config_error_before_mlflow_is_asked():
    with pytest.raises(ConfigError, match="malformed"):
        Registry("http://127.0.0.1:1").resolve("models:/name@alias/3")


def test_champion_resolve_files_and_scores_from_one_registry(defect_model):
    registry = Registry(defect_model.tracking_uri)
    assert str(registry.champion(defect_model.name).version) == defect_model.version
    assert registry.champion("no-such-model") is None
    ref = registry.resolve(f"models:/{defect_model.name}@{CHAMPION}")
    assert ref == ModelVersionRef(defect_model.name, defect_model.version)
    assert "MLmodel" in registry.model_files(ref)
    scores = registry.fail_probabilities(ref, [str(p) for p in defect_model.images[:3]])
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)


def test_training_cutoff_reads_the_trained_until_tag_else_the_registration_time():
    import datetime as dt
    from types import SimpleNamespace

    from defectflow.registry.client import training_cutoff
    from defectflow.registry.names import TRAINED_UNTIL_TAG

    utc = dt.UTC
    tagged = SimpleNamespace(tags={TRAINED_UNTIL_TAG: "2026-10-04 12:00:00"}, creation_timestamp=0)
    assert training_cutoff(tagged) == dt.datetime(2026, 10, 4, 12, tzinfo=utc)
    offset = SimpleNamespace(tags={TRAINED_UNTIL_TAG: "2026-10-04T14:00:00+02:00"}, creation_timestamp=0)
    assert training_cutoff(offset) == dt.datetime(2026, 10, 4, 12, tzinfo=utc)
    untagged = SimpleNamespace(tags={}, creation_timestamp=1_700_000_000_000)
    assert training_cutoff(untagged) == dt.datetime.fromtimestamp(1_700_000_000, tz=utc)
