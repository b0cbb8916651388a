"""Roles: the predefined ones and an organization's custom roles."""

from __future__ import annotations

import json
import logging
import sqlite3

from aiohttp import web

from zenpro_local import authz
from zenpro_local.api import access, models
from zenpro_local.api.auth import principal
from zenpro_local.api.changes import save_changes
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError, conflict, forbidden, invalid, not_found
from zenpro_local.api.requests import page, pagination, read_body
from zenpro_local.api.routing import PAGINATION, route
from zenpro_local.store import Store, new_id, utcnow

logger = logging.getLogger(__name__)

TAG = "roles"


def serialize(row: dict) -> dict:
    return {
        "id": row["id"],
        "organization_id": row["organization_id"],
        "name": row["name"],
        "scope": row["scope"],
        "description": row["description"],
        "permissions": json.loads(row["permissions"]),
        "predefined": bool(row["predefined"]),
        "created": row["created"],
        "updated": row["updated"],
    }


def find_role(store: Store, organization_id: str, role_id: str) -> dict | None:
    """Return a predefined role or a custom role of the organization."""
    return store.query_one(
        "SELECT * FROM roles WHERE id = ? AND "
        "(organization_id IS NULL OR organization_id = ?)",
        [role_id, organization_id],
    )


def ensure_may_grant(
    request: web.Request,
    role: dict,
    organization_id: str,
    tenant_id: str | None,
    verb: str = "grant",
) -> None:
    """Raise 403 unless the caller holds everything ``role`` gives."""
    permissions = json.loads(role["permissions"])
    if not authz.may_grant(principal(request), permissions, organization_id, tenant_id):
        raise forbidden(
            f"{verb} role {role['name']!r}: it gives permissions you do not hold"
        )


def _check_permissions(scope: str, permissions: list[str]) -> None:
    problem = authz.validate_permissions(scope, permissions)
    if problem:
        raise invalid("permissions", problem)


def _name_taken(name: str) -> ApiError:
    return conflict(
        f"a role named {name!r} already exists at this scope: choose another name",
        field="name",
    )


@route(
    "GET",
    "/api/v1/organizations/{organization_id}/roles",
    summary="List the predefined roles and the organization's custom roles",
    tag=TAG,
    response=models.Page[models.Role],
    query=PAGINATION,
    errors=(401, 403, 404, 422),
)
async def list_roles(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    access.organization(request, organization_id, "role", "read")
    offset, limit = pagination(request)
    store = context(request).store
    where = "organization_id IS NULL OR organization_id = ?"
    total = store.query_one(
        f"SELECT count(*) AS n FROM roles WHERE {where}", [organization_id]
    )["n"]
    rows = store.query_all(
        f"SELECT * FROM roles WHERE {where} "
        "ORDER BY predefined DESC, scope, name LIMIT ? OFFSET ?",
        [organization_id, limit, offset],
    )
    return page([serialize(row) for row in rows], total, offset, limit)


@route(
    "POST",
    "/api/v1/organizations/{organization_id}/roles",
    summary="Create a custom role from resource types and actions",
    tag=TAG,
    status=201,
    body=models.RoleCreate,
    response=models.Role,
    errors=(400, 401, 403, 404, 409, 413, 422),
)
async def create_role(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    access.organization(request, organization_id, "role", "create")
    body = await read_body(request, models.RoleCreate)
    _check_permissions(body.scope, body.permissions)

    store = context(request).store
    now = utcnow()
    row = {
        "id": new_id(),
        "organization_id": organization_id,
        "name": body.name,
        "scope": body.scope,
        "description": body.description,
        "permissions": json.dumps(sorted(set(body.permissions))),
        "predefined": 0,
        "created": now,
        "updated": now,
    }
    try:
        with store.transaction() as db:
            db["roles"].insert(row)
            store.record_event(
                "created",
                "role",
                row["id"],
                actor_id=principal(request).user_id,
                organization_id=organization_id,
                message=f"custom role {body.name!r} created",
            )
    except sqlite3.IntegrityError:
        raise _name_taken(body.name) from None
    return web.json_response(serialize(row), status=201)


def _role_in_reach(request: web.Request, action: str) -> dict:
    role_id = request.match_info["role_id"]
    store = context(request).store
    row = store.query_one("SELECT * FROM roles WHERE id = ?", [role_id])
    if row is None:
        raise not_found("role", role_id)
    if row["predefined"]:
        if action != "read":
            raise conflict(f"role {row['name']!r} is predefined and cannot be changed")
        return row
    try:
        access.organization(request, row["organization_id"], "role", action)
    except ApiError as error:
        if error.status == 404:
            raise not_found("role", role_id) from None
        raise
    return row


@route(
    "GET",
    "/api/v1/roles/{role_id}",
    summary="Read a role",
    tag=TAG,
    response=models.Role,
    errors=(401, 403, 404),
)
async def get_role(request: web.Request) -> web.Response:
    return web.json_response(serialize(_role_in_reach(request, "read")))


@route(
    "PATCH",
    "/api/v1/roles/{role_id}",
    summary="Change a custom role",
    tag=TAG,
    body=models.RoleUpdate,
    response=models.Role,
    errors=(400, 401, 403, 404, 409, 413, 422),
)
async def update_role(request: web.Request) -> web.Response:
    row = _role_in_reach(request, "update")
    body = await read_body(request, models.RoleUpdate)
    changes = body.model_dump(exclude_none=True)
    if "permissions" in changes:
        _check_permissions(row["scope"], changes["permissions"])
        # Changing a role changes every holder's rights: the caller must
        # hold both what the role gave and what it will give.
        ensure_may_grant(request, row, row["organization_id"], None, "change")
        ensure_may_grant(
            request,
            {**row, "permissions": json.dumps(changes["permissions"])},
            row["organization_id"],
            None,
            "change",
        )
        changes["permissions"] = json.dumps(sorted(set(changes["permissions"])))
    if not changes:
        return web.json_response(serialize(row))

    saved = save_changes(
        request,
        "roles",
        row,
        changes,
        object_type="role",
        organization_id=row["organization_id"],
        name_taken=_name_taken,
    )
    return web.json_response(serialize(saved))


@route(
    "DELETE",
    "/api/v1/roles/{role_id}",
    summary="Delete a custom role and its assignments",
    tag=TAG,
    status=204,
    errors=(401, 403, 404, 409),
)
async def delete_role(request: web.Request) -> web.Response:
    row = _role_in_reach(request, "delete")
    ensure_may_grant(request, row, row["organization_id"], None, "delete")
    store = context(request).store
    with store.transaction() as db:
        db["roles"].delete(row["id"])
        store.record_event(
            "deleted",
            "role",
            row["id"],
            actor_id=principal(request).user_id,
            organization_id=row["organization_id"],
            message=f"custom role {row['name']!r} deleted",
        )
    return web.Response(status=204)
