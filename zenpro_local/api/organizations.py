"""Organizations: create, list, read, rename and delete."""

from __future__ import annotations

import logging
import sqlite3

from aiohttp import web
from pydantic import Field

from zenpro_local import authz
from zenpro_local.api import access, models
from zenpro_local.api.auth import principal
from zenpro_local.api.changes import save_changes
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError, conflict, not_found
from zenpro_local.api.requests import page, pagination, read_body
from zenpro_local.api.routing import PAGINATION, QueryParam, route
from zenpro_local.store import new_id, utcnow

logger = logging.getLogger(__name__)

TAG = "organizations"


class CallerPermissions(models.Response):
    organization_id: str
    tenant_id: str | None
    is_superuser: bool
    allowed: list[str] = Field(
        description="resource:action pairs the caller holds, e.g. tenant:create."
    )


def serialize(row: dict) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "created": row["created"],
        "updated": row["updated"],
    }


def _name_taken(name: str) -> ApiError:
    return conflict(
        f"an organization named {name!r} already exists: choose another name",
        field="name",
    )


@route(
    "POST",
    "/api/v1/organizations",
    summary="Create an organization; the caller becomes its Admin",
    tag=TAG,
    status=201,
    body=models.OrganizationCreate,
    response=models.Organization,
    errors=(400, 401, 409, 413, 422),
)
async def create_organization(request: web.Request) -> web.Response:
    body = await read_body(request, models.OrganizationCreate)
    caller = principal(request)
    store = context(request).store
    now = utcnow()
    row = {
        "id": new_id(),
        "name": body.name,
        "description": body.description,
        "created": now,
        "updated": now,
    }
    try:
        with store.transaction() as db:
            db["organizations"].insert(row)
            db["role_assignments"].insert(
                {
                    "id": new_id(),
                    "role_id": "organization-admin",
                    "user_id": caller.user_id,
                    "team_id": None,
                    "organization_id": row["id"],
                    "tenant_id": None,
                    "created": now,
                    "created_by": caller.user_id,
                }
            )
            store.record_event(
                "created",
                "organization",
                row["id"],
                actor_id=caller.user_id,
                organization_id=row["id"],
                message=f"organization {body.name!r} created",
            )
    except sqlite3.IntegrityError:
        raise _name_taken(body.name) from None
    logger.info("Organization %s (%s) created by %s", row["id"], body.name, caller.username)
    return web.json_response(serialize(row), status=201)


@route(
    "GET",
    "/api/v1/organizations",
    summary="List the organizations the caller belongs to",
    tag=TAG,
    response=models.Page[models.Organization],
    query=PAGINATION,
    errors=(401, 422),
)
async def list_organizations(request: web.Request) -> web.Response:
    offset, limit = pagination(request)
    caller = principal(request)
    store = context(request).store
    if caller.is_superuser:
        where, params = "1", []
    else:
        ids = sorted(caller.organization_ids())
        where = f"id IN ({', '.join('?' * len(ids))})" if ids else "0"
        params = ids
    total = store.query_one(
        f"SELECT count(*) AS n FROM organizations WHERE {where}", params
    )["n"]
    rows = store.query_all(
        f"SELECT * FROM organizations WHERE {where} ORDER BY name LIMIT ? OFFSET ?",
        params + [limit, offset],
    )
    return page([serialize(row) for row in rows], total, offset, limit)


@route(
    "GET",
    "/api/v1/organizations/{organization_id}",
    summary="Read an organization",
    tag=TAG,
    response=models.Organization,
    errors=(401, 404),
)
async def get_organization(request: web.Request) -> web.Response:
    row = access.organization(request, request.match_info["organization_id"])
    return web.json_response(serialize(row))


@route(
    "PATCH",
    "/api/v1/organizations/{organization_id}",
    summary="Rename an organization or change its description",
    tag=TAG,
    body=models.OrganizationUpdate,
    response=models.Organization,
    errors=(400, 401, 403, 404, 409, 413, 422),
)
async def update_organization(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    row = access.organization(request, organization_id, "organization", "update")
    body = await read_body(request, models.OrganizationUpdate)
    changes = body.model_dump(exclude_none=True)
    if not changes:
        return web.json_response(serialize(row))

    saved = save_changes(
        request,
        "organizations",
        row,
        changes,
        object_type="organization",
        organization_id=organization_id,
        name_taken=_name_taken,
    )
    return web.json_response(serialize(saved))


@route(
    "DELETE",
    "/api/v1/organizations/{organization_id}",
    summary="Delete an organization that has no tenants left",
    tag=TAG,
    status=204,
    errors=(401, 403, 404, 409),
)
async def delete_organization(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    row = access.organization(request, organization_id, "organization", "delete")
    store = context(request).store
    tenants = store.query_one(
        "SELECT count(*) AS n FROM tenants WHERE organization_id = ?",
        [organization_id],
    )["n"]
    if tenants:
        raise conflict(
            f"organization {row['name']!r} still has {tenants} tenant(s): "
            "delete and purge them first"
        )
    with store.transaction() as db:
        db["organizations"].delete(organization_id)
        store.record_event(
            "deleted",
            "organization",
            organization_id,
            actor_id=principal(request).user_id,
            organization_id=organization_id,
            message=f"organization {row['name']!r} deleted",
        )
    logger.info("Organization %s (%s) deleted", organization_id, row["name"])
    return web.Response(status=204)


@route(
    "GET",
    "/api/v1/organizations/{organization_id}/permissions",
    summary="List what the caller may do in the organization or one of its "
    "tenants, as resource:action pairs of the daemon's resource types",
    tag=TAG,
    response=CallerPermissions,
    query=(QueryParam("tenant_id", "string", "Ask about this tenant."),),
    errors=(401, 404),
)
async def list_caller_permissions(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    access.organization(request, organization_id)
    tenant_id = request.query.get("tenant_id") or None
    if tenant_id is not None:
        tenant = access.tenant(request, tenant_id)
        if tenant["organization_id"] != organization_id:
            raise not_found("tenant", tenant_id)
    caller = principal(request)
    granted = [
        f"{resource}:{action}"
        for resource in authz.DAEMON_RESOURCES
        for action in authz.DAEMON_ACTIONS
        if authz.allowed(caller, resource, action, organization_id, tenant_id)
    ]
    return web.json_response(
        {
            "organization_id": organization_id,
            "tenant_id": tenant_id,
            "is_superuser": caller.is_superuser,
            "allowed": granted,
        }
    )
