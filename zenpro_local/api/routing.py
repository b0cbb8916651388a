"""Route declarations that serve both aiohttp's router and the OpenAPI document.

Each handler is declared once with :func:`route`, giving its method, path,
request and response models, status and query parameters; the app and the
OpenAPI document are both built from that list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class QueryParam:
    """One query parameter of an operation."""

    name: str
    type: str  # JSON Schema type: "string", "integer", "boolean"
    description: str
    required: bool = False
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class Operation:
    """One route: how aiohttp calls it and how OpenAPI describes it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    status: int = 200
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: tuple[QueryParam, ...] = ()
    public: bool = False
    errors: tuple[int, ...] = field(default=())
    content_type: str = "application/json"


OPERATIONS: list[Operation] = []

MAX_OFFSET = 2**31
MAX_LIMIT = 1000

PAGINATION = (
    QueryParam(
        "offset",
        "integer",
        "Number of items to skip.",
        default=0,
        minimum=0,
        maximum=MAX_OFFSET,
    ),
    QueryParam(
        "limit",
        "integer",
        "Largest number of items to return.",
        default=50,
        minimum=1,
        maximum=MAX_LIMIT,
    ),
)


def route(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    status: int = 200,
    body: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    query: tuple[QueryParam, ...] = (),
    public: bool = False,
    errors: tuple[int, ...] = (),
    content_type: str = "application/json",
) -> Callable[[Handler], Handler]:
    """Declare ``handler`` as the operation ``method path``."""

    def register(handler: Handler) -> Handler:
        OPERATIONS.append(
            Operation(
                method=method,
                path=path,
                handler=handler,
                summary=summary,
                tag=tag,
                status=status,
                body=body,
                response=response,
                query=query,
                public=public,
                errors=errors,
                content_type=content_type,
            )
        )
        if public:
            handler.public = True  # type: ignore[attr-defined]
        return handler

    return register


def add_routes(app: web.Application) -> None:
    """Register every declared operation on ``app``'s router."""
    for operation in OPERATIONS:
        app.router.add_route(operation.method, operation.path, operation.handler)


def is_public(request: web.Request) -> bool:
    """Return whether the matched handler needs no authentication."""
    handler = request.match_info.handler
    return bool(getattr(handler, "public", False))
