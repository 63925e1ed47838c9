"""Request-size limit enforced while the body streams in (pure ASGI, nothing buffered here).

A declared Content-Length above the limit is refused at once; otherwise the body is passed to
the app as it arrives and counted, and the request is refused with 413 as soon as the count
passes the limit. The middleware itself holds no more than one chunk, so what a request can
make the process buffer is bounded by the multipart parser's spooling (files over 1 MiB go
to a temporary file) rather than by the body size times the number of clients.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from defectflow.serving.auth import send_json

BODY_METHODS = {"POST", "PUT", "PATCH"}


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, f"the request body is {int(declared)} bytes; the limit is {self.max_bytes}")
            return
        received = 0
        refused = False
        started = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send, f"the request body exceeds the limit of {self.max_bytes} bytes")
                    # The app sees a client that went away; whatever it answers is dropped below.
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, guarded)

    @staticmethod
    async def _refuse(send: Send, detail: str) -> None:
        await send_json(send, 413, {"error": "request_too_large", "detail": detail})
