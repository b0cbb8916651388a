"""The management plane's router, kept apart from the admin API's.

These endpoints speak ZenML Pro's protocol to ZenML servers and the
``zenml`` CLI, so they stay out of the admin API's route list, OpenAPI
document and API-key authentication: each handler checks its own bearer
token. A middleware hands every request under :data:`PREFIX` to this
router.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_urldispatcher import UrlDispatcher

from zenpro_local.api.errors import Handler
from zenpro_local.management_plane import PREFIX

ROUTER = UrlDispatcher()
PATH_PARAMS = web.RequestKey("management_plane_path_params", dict)


def route(method: str, path: str, **description: object):
    """Declare ``handler`` as ``method path``; ``description`` documents it."""

    def register(handler: Handler) -> Handler:
        ROUTER.add_route(method, path, handler)
        return handler

    return register


def path_param(request: web.Request, name: str) -> str:
    """Return a path parameter of a management-plane route."""
    return request[PATH_PARAMS][name]


@web.middleware
async def dispatch_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Serve requests under :data:`PREFIX` from the management plane's router."""
    if not request.path.startswith(PREFIX + "/"):
        return await handler(request)
    match = await ROUTER.resolve(request)
    if match.http_exception is not None:
        raise match.http_exception
    request[PATH_PARAMS] = dict(match)
    return await match.handler(request)
