"""HTTP framing the server refuses, and connections it does not keep.

- A request with both ``Content-Length`` and ``Transfer-Encoding`` is how
  request smuggling starts: a proxy in front may frame it by one header and
  the server by the other. It is answered 400 and its connection closed.
- A response sent before the request's body was read to its end (an error,
  a refusal) closes the connection: whatever the client sends after it is
  never taken for a next request, and the server stops reading a body it
  does not want.
- A request whose headers together exceed ``max_header_bytes`` is answered
  431 and closed: h11 only bounds a head still arriving, so one that came in
  a single read would otherwise pass whatever its size.
- Every response says ``X-Content-Type-Options: nosniff``: a browser must
  take JSON for JSON, whatever is in it.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sozy.api.schemas import Error

_CLOSE = (b"connection", b"close")
_NOSNIFF = (b"x-content-type-options", b"nosniff")


class FramingGuard:
    """ASGI middleware around the whole app (outermost, so it sees every response)."""

    def __init__(self, app: ASGIApp, max_header_bytes: int = 16384) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        names = {name.lower() for name, _ in scope["headers"]}
        if b"content-length" in names and b"transfer-encoding" in names:
            await _refuse(send, 400, "bad_framing", "a request must not have both Content-Length and Transfer-Encoding")
            return
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if self.max_header_bytes and size > self.max_header_bytes:
            await _refuse(send, 431, "headers_too_large", f"the request's headers exceed {self.max_header_bytes} bytes")
            return
        body_pending = _has_body(scope)

        async def receive_tracking() -> Message:
            nonlocal body_pending
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_pending = False
            return message

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != _NOSNIFF[0]]
                headers.append(_NOSNIFF)
                if body_pending:
                    headers.append(_CLOSE)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive_tracking, send_guarded)


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value.strip() not in (b"", b"0"):
            return True
    return False


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    error: Error = {"error": {"code": code, "message": message}}
    body = json.dumps(error).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                _NOSNIFF,
                _CLOSE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
