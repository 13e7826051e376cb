"""Request body size limit, as pure ASGI middleware.

A body whose Content-Length is over the limit is answered 413 before a byte of
it is read; a chunked body is counted as it streams and cut off with 413 the
moment it passes the limit, so an oversized request never sits in memory.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the limit.

    An HTTPException so that FastAPI's body parsing re-raises it (it turns any
    other error while reading the body into a 400) and the app answers 413.
    """

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body is over the limit of {max_bytes} bytes", headers={"Connection": "close"})


class BodySizeLimit:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return await _reply(send, 400, "Content-Length is not a number")
            if declared > self.max_bytes:
                return await _reply(send, 413, f"request body is {declared} bytes; the limit is {self.max_bytes}")
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reply(send, 413, f"request body is over the limit of {self.max_bytes} bytes")


async def _reply(send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "detail": None}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def describe_body_error(exc: Exception) -> str | None:
    """A readable reason for FastAPI's generic 400 "There was an error parsing the body", from its cause."""
    cause = exc.__cause__
    if cause is None or getattr(exc, "status_code", None) != 400:
        return None
    if isinstance(cause, RecursionError):
        return "request body is nested too deeply to parse"
    if isinstance(cause, UnicodeError):
        return "request body is not valid UTF-8 JSON"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "request body holds a number too long to parse"
    return "request body could not be parsed as JSON"
