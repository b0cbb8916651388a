"""One JSON error shape for every 4xx and 5xx, rendered in one middleware.

Every error body reads::

    {"error": {"code": "not_found", "message": "...", "field": null}}

``code`` is a stable word scripts can test, ``message`` says what failed
and what to do, ``field`` names the request field at fault, if any.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web

from zenpro_local.api.context import CONTEXT

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error to send to the client as the JSON error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.field = field
        self.headers = headers or {}


def not_found(kind: str, identifier: str) -> ApiError:
    """Return the 404 for an object that does not exist or is not visible."""
    return ApiError(404, f"{kind} {identifier!r} not found")


def forbidden(action: str) -> ApiError:
    return ApiError(403, f"you do not have permission to {action}")


def conflict(message: str, field: str | None = None) -> ApiError:
    return ApiError(409, message, field=field)


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, f"invalid {field}: {message}", field=field)


def error_response(error: ApiError) -> web.Response:
    body = {
        "error": {"code": error.code, "message": error.message, "field": error.field}
    }
    return web.json_response(body, status=error.status, headers=error.headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render ApiError, aiohttp's HTTP errors and crashes as the error shape."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return error_response(_from_http_exception(request, error))
    except Exception:
        logger.exception("Unhandled error in %s %s", request.method, request.path)
        return error_response(
            ApiError(500, "internal error: the daemon's log has the details")
        )


def _from_http_exception(request: web.Request, error: web.HTTPException) -> ApiError:
    status = error.status
    if status == 404:
        message = f"no route for {request.method} {request.path}"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.path}"
    elif status == 413:
        message = (
            "request body too large: at most "
            f"{request.app[CONTEXT].settings['max_body_size']} bytes are accepted"
        )
    else:
        message = error.text or error.reason
    headers = {}
    if "Allow" in error.headers:
        headers["Allow"] = error.headers["Allow"]
    return ApiError(status, message, headers=headers)
