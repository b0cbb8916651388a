"""``/users/authorize_server``: who a token stands for, on one tenant.

A tenant server calls it on every login and on every request that carries
a daemon API key. A user who may not read the tenant is refused with 403,
so an organization member without a role on the tenant cannot sign in.
"""

from __future__ import annotations

import logging

from aiohttp import web

from zenpro_local.api.access import can_see_tenant
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError, not_found
from zenpro_local.management_plane.routing import route
from zenpro_local.authz import load_principal
from zenpro_local.management_plane import PREFIX, bearer, logins

logger = logging.getLogger(__name__)

TAG = "management plane"


@route(
    "GET",
    PREFIX + "/users/authorize_server",
    summary="Return the user of a token, if it may use the tenant",
    tag=TAG,
    public=True,
    errors=(401, 403, 404),
)
async def authorize_server(request: web.Request) -> web.Response:
    store = context(request).store
    holder = bearer.user_caller(request)
    server_id = request.query.get("server_id", "")
    tenant = store.query_one(
        "SELECT * FROM tenants WHERE id = ? AND deleted IS NULL", [server_id]
    )
    if tenant is None:
        raise not_found("server", server_id)
    user = holder.user
    if not can_see_tenant(load_principal(store, user), tenant):
        logger.info("User %s rejected on tenant %s: no role", user["id"], tenant["id"])
        raise ApiError(403, f"user {user['username']!r} has no role on this tenant")

    logins.record(store, tenant["id"], user["id"], holder.api_key_id)
    return web.json_response(
        {
            "id": user["id"],
            "username": user["username"],
            # ZenML 0.98.0 rejects a returning external user without an
            # email, so users without one get an address under base_domain.
            "email": user["email"]
            or f"{user['username']}@{context(request).settings['base_domain']}",
            "name": user["full_name"] or user["username"],
            "is_superuser": bool(user["is_superuser"]),
            "is_service_account": False,
            "avatar_url": None,
            "oidc_claims": None,
        }
    )
