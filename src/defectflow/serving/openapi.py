"""The service's OpenAPI document, as committed in docs/openapi.json (a test keeps them equal)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from defectflow.atomic import write_text

COMMITTED_SPEC = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def openapi_spec() -> dict[str, Any]:
    """The spec of the core API (auth on; routers mounted by other components are not part of it)."""
    from defectflow.serving.app import create_app
    from defectflow.serving.settings import ServingSettings

    return create_app(ServingSettings(api_key="spec-only")).openapi()


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def write_spec(target: Path = COMMITTED_SPEC) -> Path:
    write_text(target, render(openapi_spec()))
    return target
