"""API-key authentication of the prediction routes (header X-API-Key), configurable on/off."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

API_KEY_HEADER = "X-API-Key"
_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="the service's API key")


def require_api_key(request: Request, presented: str | None = Security(_header)) -> None:
    """Reject the request unless auth is off or the header matches (constant-time comparison)."""
    settings = request.app.state.settings
    if not settings.auth_enabled:
        return
    if not presented:
        raise HTTPException(status_code=401, detail={"error": "missing_api_key",
                                                     "detail": f"send the API key in the {API_KEY_HEADER} header"})
    if not hmac.compare_digest(presented.encode(), settings.api_key.encode()):
        raise HTTPException(status_code=401, detail={"error": "invalid_api_key",
                                                     "detail": f"the {API_KEY_HEADER} header does not match"})
