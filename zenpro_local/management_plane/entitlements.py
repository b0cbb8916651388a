"""Feature entitlements: every feature is allowed, without limits.

A tenant server asks before it creates a project, pipeline, run, model,
run template or schedule; only the status code counts (200 allows, 402
means a limit is reached, 403 forbids). The daemon sets no limits.
"""

from __future__ import annotations

from aiohttp import web

from zenpro_local.management_plane.routing import path_param, route
from zenpro_local.management_plane import PREFIX, bearer

TAG = "management plane"


@route(
    "GET",
    PREFIX + "/organizations/{organization_id}/entitlement/{feature}",
    summary="Tell a tenant server whether a feature may be used",
    tag=TAG,
    public=True,
    errors=(401, 403),
)
async def entitlement(request: web.Request) -> web.Response:
    bearer.tenant_caller(request)
    feature = path_param(request, "feature")
    return web.json_response({"feature": feature, "allowed": True, "limit": None})
