"""docs/openapi.json is the service's spec: regenerate with `defectflow serve --write-openapi docs/openapi.json`."""

from __future__ import annotations

from defectflow.serving.openapi import COMMITTED_SPEC, openapi_spec, render


def test_committed_openapi_matches_the_app():
    assert COMMITTED_SPEC.exists(), "run `defectflow serve --write-openapi docs/openapi.json`"
    assert COMMITTED_SPEC.read_text() == render(openapi_spec()), (
        "the API changed: run `defectflow serve --write-openapi docs/openapi.json` and commit the result")


def test_spec_documents_the_routes_and_the_api_key():
    spec = openapi_spec()
    assert {"/v1/predict", "/v1/predict/batch", "/v1/model", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert {"401", "413", "415", "422"} <= set(spec["paths"]["/v1/predict"]["post"]["responses"])
