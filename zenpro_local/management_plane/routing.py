"""The management plane's routes, kept apart from the admin API's.

These endpoints speak ZenML Pro's protocol to ZenML servers and the
``zenml`` CLI, so they stay out of the admin API's operation list, OpenAPI
document and API-key authentication: each handler checks its own bearer
token. :func:`add_routes` puts them on the app's router all the same, so a
request to one is resolved once and its middleware chain is built once per
route, like any other. Tenant servers send a permission check with nearly
every request they serve.
"""

from __future__ import annotations

from aiohttp import web

from zenpro_local.api.errors import Handler

ROUTES: list[tuple[str, str, Handler]] = []


def route(method: str, path: str, **description: object):
    """Declare ``handler`` as ``method path``; ``description`` documents it."""

    def register(handler: Handler) -> Handler:
        ROUTES.append((method, path, handler))
        return handler

    return register


def add_routes(app: web.Application) -> None:
    """Register every management-plane route on ``app``'s router."""
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)


def path_param(request: web.Request, name: str) -> str:
    """Return a path parameter of a management-plane route."""
    return request.match_info[name]
