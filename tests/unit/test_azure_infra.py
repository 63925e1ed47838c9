"""infra/azure: the Terraform declares the documented resources and is canonically formatted.

`terraform validate` needs the azurerm provider from the Terraform registry, which this
machine cannot reach; `terraform fmt` parses the HCL offline, so syntax errors are caught.
"""

from __future__ import annotations

import re
import shutil
import subprocess
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


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_is_formatted_and_parses():
    result = subprocess.run(["terraform", "fmt", "-check", "-diff", "-no-color", str(AZURE_DIR)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
