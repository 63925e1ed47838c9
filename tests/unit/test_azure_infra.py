"""infra/azure: the Terraform declares the documented resources and its HCL parses.

Terraform itself is on neither Debian nor PyPI, and `terraform validate` needs the azurerm
provider from the Terraform registry, so the files are parsed with python-hcl2 (PyPI):
syntax errors are caught; `terraform fmt` canonical formatting and provider-schema checks are
not made here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

AZURE_DIR = Path(__file__).resolve().parents[2] / "infra" / "azure"
REQUIRED = {"azurerm_storage_account", "azurerm_storage_container", "azurerm_container_registry",
            "azurerm_kubernetes_cluster", "azurerm_role_assignment", "azurerm_postgresql_flexible_server",
            "azurerm_postgresql_flexible_server_database"}


def declared_resources() -> set[str]:
    text = "\n".join(p.read_text() for p in AZURE_DIR.glob("*.tf"))
    return set(re.findall(r'^resource\s+"([a-z0-9_]+)"\s+"[a-z0-9_]+"', text, flags=re.MULTILINE))


def test_documented_resources_are_declared():
    assert REQUIRED <= declared_resources()


@pytest.mark.parametrize("path", sorted(AZURE_DIR.glob("*.tf")), ids=lambda p: p.name)
def test_terraform_parses(path):
    import hcl2

    with path.open() as fh:
        assert hcl2.load(fh) is not None


def test_parsed_resources_match_the_declared_ones():
    import hcl2

    parsed = set()
    for path in AZURE_DIR.glob("*.tf"):
        with path.open() as fh:
            for block in hcl2.load(fh).get("resource", []):
                parsed.update(k.strip('"') for k in block)
    assert parsed == declared_resources()
