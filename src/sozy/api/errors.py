"""The API's error type and the handlers that turn every failure into JSON.

Every error a client sees has one shape, ``{"error": {"code", "message"}}``,
and a status that says whose fault it was. Client mistakes are raised as
:class:`ApiError`; anything else that escapes an endpoint is a server fault,
logged (without the request body) and answered 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sozy.api.schemas import Error

log = logging.getLogger("sozy.api")

# Codes for the statuses Starlette raises itself (unknown route, wrong method).
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "overloaded",
}


class ApiError(Exception):
    """A failure to report to the client: HTTP status, stable code, readable message."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON body every error has."""
    body: Error = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=headers)
    return error_response(exc.status_code, code, str(exc.detail), headers)


async def handle_server_error(request: Request, exc: Exception) -> Response:
    # Only the route and the exception: never the body, which may be someone's photo.
    log.error("server error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error; it has been logged")


def exception_handlers() -> dict[type[Exception] | int, object]:
    return {
        ApiError: handle_api_error,
        HTTPException: handle_http_exception,
        Exception: handle_server_error,
    }
