"""API-key authentication of the prediction routes (header X-API-Key), configurable on/off."""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from starlette.types import ASGIApp, Receive, Scope, Send

API_KEY_HEADER = "X-API-Key"
_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="the service's API key")


def check_api_key(settings: Any, presented: str | None) -> None:
    """Raise 401 unless auth is off or `presented` matches the key (constant-time comparison)."""
    if not settings.auth_enabled:
        return
    if not presented:
        raise HTTPException(status_code=401, detail={"error": "missing_api_key",
                                                     "detail": f"send the API key in the {API_KEY_HEADER} header"})
    if not hmac.compare_digest(presented.encode(), settings.api_key.encode()):
        raise HTTPException(status_code=401, detail={"error": "invalid_api_key",
                                                     "detail": f"the {API_KEY_HEADER} header does not match"})


def require_api_key(request: Request, presented: str | None = Security(_header)) -> None:
    """Route dependency: reject the request unless auth is off or the header matches."""
    check_api_key(request.app.state.settings, presented)


def uses_api_key(route: Any) -> bool:
    """True when `route` (an APIRoute) depends on `require_api_key`, directly or through a sub-dependency."""
    stack = list(getattr(getattr(route, "dependant", None), "dependencies", []))
    while stack:
        dependant = stack.pop()
        if dependant.call is require_api_key:
            return True
        stack.extend(dependant.dependencies)
    return False


class ApiKeyGate:
    """ASGI middleware: refuse a request to a key-protected route before a byte of its body is read.

    FastAPI parses the multipart body before it runs dependencies, so without this gate an
    unauthenticated client could make the service buffer and parse uploads (and get 400 for a
    malformed one instead of 401). `protected` maps path → route and is filled once the routers
    are mounted; the route dependency stays, for the OpenAPI security scheme and as a second check.
    """

    def __init__(self, app: ASGIApp, settings: Any, protected: dict[str, Any]):
        self.app = app
        self.settings = settings
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.protected.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None or scope["method"] not in route.methods or not self.settings.auth_enabled:
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        presented = headers.get(API_KEY_HEADER.lower().encode(), b"").decode("latin-1")
        try:
            check_api_key(self.settings, presented or None)
        except HTTPException as exc:
            scope["route"] = route  # metrics label the refusal with its route, not "unmatched"
            await send_json(send, exc.status_code, exc.detail)
            return
        await self.app(scope, receive, send)


async def send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    """Answer with a JSON body and close the connection (used before the app has read the body)."""
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
