"""Reading request bodies and query parameters, with the API's error shape."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from zenpro_local.api.errors import ApiError
from zenpro_local.api.routing import MAX_LIMIT, MAX_OFFSET

Model = TypeVar("Model", bound=BaseModel)


async def read_body(request: web.Request, model: type[Model]) -> Model:
    """Parse the JSON body of ``request`` into ``model``.

    Raises:
        ApiError: 400 for a missing or malformed body, 413 (through aiohttp)
            for one over the size limit, 422 naming the first invalid field.
    """
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "missing request body: send a JSON object")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ApiError(
            400, "malformed JSON in request body: nested too deeply"
        ) from None
    except ValueError as error:
        # JSONDecodeError, UnicodeDecodeError, and integers longer than
        # Python's limit on digits (4300 by default) are all ValueErrors.
        raise ApiError(400, f"malformed JSON in request body: {error}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _validation_error(error) from None


def _validation_error(error: ValidationError) -> ApiError:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    kind = first["type"]
    if kind == "extra_forbidden":
        message = f"unknown field {field!r}: remove it"
    elif kind == "missing":
        message = f"missing required field {field!r}"
    else:
        message = f"invalid {field}: {_plain(first['msg'])}"
    return ApiError(422, message, field=field)


def _plain(message: str) -> str:
    return message.removeprefix("Value error, ")


def query_int(
    request: web.Request,
    name: str,
    default: int,
    minimum: int,
    maximum: int,
) -> int:
    """Return the integer query parameter ``name``, checked against its range."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            422, f"invalid {name}: {raw!r} is not an integer", field=name
        ) from None
    if not minimum <= value <= maximum:
        raise ApiError(
            422,
            f"invalid {name}: {value} is outside {minimum}..{maximum}",
            field=name,
        )
    return value


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ApiError(422, f"invalid {name}: {raw!r} is not true or false", field=name)


def pagination(request: web.Request) -> tuple[int, int]:
    """Return ``(offset, limit)`` from the query string."""
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    limit = query_int(request, "limit", 50, 1, MAX_LIMIT)
    return offset, limit


def page(items: list, total: int, offset: int, limit: int) -> web.Response:
    return web.json_response(
        {"items": items, "total": total, "offset": offset, "limit": limit}
    )


def page_body(items: list, total: int, offset: int, limit: int) -> bytes:
    """Return the encoded JSON of a page, as :func:`page` would send it."""
    document = {"items": items, "total": total, "offset": offset, "limit": limit}
    return json.dumps(document).encode()


def json_body(body: bytes, status: int = 200) -> web.Response:
    """Return a response with ``body``, which is already encoded JSON."""
    return web.Response(
        body=body, status=status, content_type="application/json", charset="utf-8"
    )
