"""Usage events that tenant servers report; logged at debug level only."""

from __future__ import annotations

import logging

from aiohttp import web

from zenpro_local.management_plane.routing import route
from zenpro_local.management_plane import PREFIX, bearer

logger = logging.getLogger(__name__)

TAG = "management plane"


@route(
    "POST",
    PREFIX + "/usage-event",
    summary="Accept a tenant server's usage event",
    tag=TAG,
    public=True,
    errors=(401, 403),
)
async def usage_event(request: web.Request) -> web.Response:
    tenant = bearer.tenant_caller(request)
    event = await request.json()
    logger.debug("Tenant %s usage event: %s", tenant["id"], event)
    return web.json_response({"accepted": True})
