"""Tenants: create, list, read, change state, upgrade, delete and purge.

Work on a tenant's server continues in the background after the request:
those operations return 202 with the tenant as it is now, and its
``status`` and events show the progress.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from zenpro_local.api import access, models
from zenpro_local.api.auth import principal
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError
from zenpro_local.api.requests import (
    json_body,
    page,
    page_body,
    pagination,
    query_bool,
    read_body,
)
from zenpro_local.api.routing import PAGINATION, QueryParam, route
from zenpro_local.authz import allowed

if TYPE_CHECKING:
    from zenpro_local.tenants.manager import TenantManager

logger = logging.getLogger(__name__)

TAG = "tenants"


def manager(request: web.Request) -> TenantManager:
    tenants = context(request).tenants
    if tenants is None:
        raise ApiError(503, "tenant management is not running: see the daemon's log")
    return tenants


def _accepted(request: web.Request, row: dict) -> web.Response:
    return web.json_response(manager(request).serialize(row), status=202)


@route(
    "POST",
    "/api/v1/organizations/{organization_id}/tenants",
    summary="Create a tenant: a ZenML server of its own",
    tag=TAG,
    status=202,
    body=models.TenantCreate,
    response=models.Tenant,
    errors=(400, 401, 403, 404, 409, 413, 422),
)
async def create_tenant(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    access.organization(request, organization_id, "tenant", "create")
    body = await read_body(request, models.TenantCreate)
    row = manager(request).create(
        organization_id=organization_id,
        name=body.name,
        description=body.description,
        zenml_version=body.zenml_version,
        actor_id=principal(request).user_id,
        auth_mode=body.auth_mode,
    )
    return _accepted(request, row)


@route(
    "GET",
    "/api/v1/tenants",
    summary="List the tenants the caller can see",
    tag=TAG,
    response=models.Page[models.Tenant],
    query=PAGINATION
    + (
        QueryParam("organization_id", "string", "Only this organization's tenants."),
        QueryParam(
            "include_deleted", "boolean", "Also list deleted tenants.", default=False
        ),
    ),
    errors=(401, 422),
)
async def list_tenants(request: web.Request) -> web.Response:
    offset, limit = pagination(request)
    include_deleted = query_bool(request, "include_deleted")
    organization_id = request.query.get("organization_id") or None
    caller = principal(request)
    tenants = manager(request)

    # Dashboards poll this list: the encoded page is kept until the state
    # changes. A caller's grants depend only on its user while it does not.
    cache = context(request).store.cache
    query = (organization_id, include_deleted, limit, offset)
    cache_key = ("tenants", caller.user_id, *query)
    body = cache.get(cache_key)
    if body is None:
        total, rows = tenants.list_visible(
            caller, organization_id, include_deleted, limit, offset
        )
        body = page_body([tenants.serialize(row) for row in rows], total, offset, limit)
        cache.put(cache_key, body, len(body))
    return json_body(body)


@route(
    "GET",
    "/api/v1/tenants/{tenant_id}",
    summary="Read a tenant",
    tag=TAG,
    response=models.Tenant,
    errors=(401, 404),
)
async def get_tenant(request: web.Request) -> web.Response:
    row = access.tenant(request, request.match_info["tenant_id"])
    return web.json_response(manager(request).serialize(row))


@route(
    "PATCH",
    "/api/v1/tenants/{tenant_id}",
    summary="Change a tenant: description, desired_state (deactivate or "
    "reactivate), zenml_version (upgrade) or auth_mode (restart)",
    tag=TAG,
    status=202,
    body=models.TenantUpdate,
    response=models.Tenant,
    errors=(400, 401, 403, 404, 409, 413, 422),
)
async def update_tenant(request: web.Request) -> web.Response:
    row = access.tenant(
        request, request.match_info["tenant_id"], "tenant", "update", include_deleted=False
    )
    body = await read_body(request, models.TenantUpdate)
    if body.auth_mode is not None:
        return await _switch_auth_mode(request, row, body)
    row = await manager(request).update(
        row,
        description=body.description,
        desired_state=body.desired_state,
        zenml_version=body.zenml_version,
        actor_id=principal(request).user_id,
    )
    return _accepted(request, row)


async def _switch_auth_mode(
    request: web.Request, row: dict, body: models.TenantUpdate
) -> web.Response:
    others = body.model_dump(exclude_none=True, exclude={"auth_mode"})
    if others:
        raise ApiError(
            422,
            "change auth_mode in a request of its own, without "
            f"{', '.join(sorted(others))}",
            field="auth_mode",
        )
    row = await manager(request).set_auth_mode(
        row, body.auth_mode, actor_id=principal(request).user_id
    )
    return _accepted(request, row)


@route(
    "POST",
    "/api/v1/tenants/{tenant_id}/restart",
    summary="Restart a tenant's server",
    tag=TAG,
    status=202,
    response=models.Tenant,
    errors=(401, 403, 404, 409),
)
async def restart_tenant(request: web.Request) -> web.Response:
    row = access.tenant(
        request, request.match_info["tenant_id"], "tenant", "update", include_deleted=False
    )
    row = await manager(request).restart(row, actor_id=principal(request).user_id)
    return _accepted(request, row)


@route(
    "DELETE",
    "/api/v1/tenants/{tenant_id}",
    summary="Delete a tenant; its data is kept unless purge=true",
    tag=TAG,
    status=202,
    response=models.Tenant,
    query=(
        QueryParam(
            "purge",
            "boolean",
            "Also delete the tenant's data (its ZenML database) for good.",
            default=False,
        ),
    ),
    errors=(401, 403, 404, 409, 422),
)
async def delete_tenant(request: web.Request) -> web.Response:
    purge = query_bool(request, "purge")
    row = access.tenant(request, request.match_info["tenant_id"], "tenant", "delete")
    row = await manager(request).delete(row, purge=purge, actor_id=principal(request).user_id)
    return _accepted(request, row)


@route(
    "POST",
    "/api/v1/tenants/{tenant_id}/api_keys",
    summary="Create a ZenML API key for the caller on this tenant; shown once",
    tag=TAG,
    status=201,
    response=models.TenantApiKeyCreated,
    errors=(401, 403, 404, 409, 503),
)
async def create_tenant_api_key(request: web.Request) -> web.Response:
    row = access.tenant(request, request.match_info["tenant_id"], include_deleted=False)
    caller = principal(request)
    if not allowed(caller, "tenant", "read", row["organization_id"], row["id"]):
        raise ApiError(403, "you have no role on this tenant")
    created = await manager(request).create_zenml_api_key(row, caller)
    return web.json_response(created, status=201)
