"""Organization members: users holding at least one role in the organization."""

from __future__ import annotations

import logging

from aiohttp import web

from zenpro_local.api import access, models, role_assignments, users
from zenpro_local.api.auth import principal
from zenpro_local.api.context import context
from zenpro_local.api.errors import invalid, not_found
from zenpro_local.api.requests import page, pagination, read_body
from zenpro_local.api.role_assignments import (
    delete_assignment,
    insert_assignment,
    not_in_organization,
)
from zenpro_local.api.roles import ensure_may_grant, find_role
from zenpro_local.api.routing import PAGINATION, route
from zenpro_local.store import Store

logger = logging.getLogger(__name__)

TAG = "members"


def _member_rows(
    store: Store, organization_id: str, limit: int, offset: int
) -> tuple[int, list[dict]]:
    member_ids = (
        "SELECT DISTINCT user_id FROM role_assignments "
        "WHERE organization_id = ? AND user_id IS NOT NULL"
    )
    total = store.query_one(
        f"SELECT count(*) AS n FROM ({member_ids})", [organization_id]
    )["n"]
    rows = store.query_all(
        f"SELECT * FROM users WHERE id IN ({member_ids}) "
        "ORDER BY username LIMIT ? OFFSET ?",
        [organization_id, limit, offset],
    )
    return total, rows


def _roles_by_user(store: Store, organization_id: str, user_ids: list[str]) -> dict:
    marks = ", ".join("?" * len(user_ids)) or "NULL"
    rows = store.query_all(
        "SELECT a.id, a.user_id, a.role_id, a.tenant_id, r.name "
        "FROM role_assignments a JOIN roles r ON r.id = a.role_id "
        f"WHERE a.organization_id = ? AND a.user_id IN ({marks}) "
        "ORDER BY a.created",
        [organization_id, *user_ids],
    )
    found: dict[str, list[dict]] = {}
    for row in rows:
        found.setdefault(row["user_id"], []).append(
            {
                "id": row["role_id"],
                "name": row["name"],
                "assignment_id": row["id"],
                "tenant_id": row["tenant_id"],
            }
        )
    return found


@route(
    "GET",
    "/api/v1/organizations/{organization_id}/members",
    summary="List the organization's members with their roles",
    tag=TAG,
    response=models.Page[models.Member],
    query=PAGINATION,
    errors=(401, 403, 404, 422),
)
async def list_members(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    access.organization(request, organization_id, "member", "read")
    offset, limit = pagination(request)
    store = context(request).store
    total, rows = _member_rows(store, organization_id, limit, offset)
    roles = _roles_by_user(store, organization_id, [row["id"] for row in rows])
    items = [
        {"user": users.serialize(row), "roles": roles.get(row["id"], [])}
        for row in rows
    ]
    return page(items, total, offset, limit)


@route(
    "POST",
    "/api/v1/organizations/{organization_id}/members",
    summary="Add a user to the organization with an organization role",
    tag=TAG,
    status=201,
    body=models.MemberAdd,
    response=models.RoleAssignment,
    errors=(400, 401, 403, 404, 409, 413, 422),
)
async def add_member(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    access.organization(request, organization_id, "member", "create")
    body = await read_body(request, models.MemberAdd)
    store = context(request).store

    user = _find_user_to_add(store, body)
    role = find_role(store, organization_id, body.role_id)
    if role is None:
        raise not_in_organization("role", body.role_id, "role_id")
    if role["scope"] != "organization":
        raise invalid(
            "role_id",
            f"role {body.role_id!r} is a tenant role: members get an organization "
            "role, and tenant roles are given through role assignments",
        )
    ensure_may_grant(request, role, organization_id, None)

    row = insert_assignment(
        store,
        role=role,
        organization_id=organization_id,
        user_id=user["id"],
        team_id=None,
        tenant_id=None,
        actor_id=principal(request).user_id,
    )
    logger.info(
        "User %s added to organization %s as %s",
        user["username"],
        organization_id,
        role["name"],
    )
    return web.json_response(role_assignments.serialize(row), status=201)


def _find_user_to_add(store: Store, body: models.MemberAdd) -> dict:
    if (body.user_id is None) == (body.username is None):
        raise invalid("user_id", "give exactly one of user_id and username")
    if body.user_id is not None:
        user = store.query_one("SELECT * FROM users WHERE id = ?", [body.user_id])
        field, value = "user_id", body.user_id
    else:
        user = store.query_one(
            "SELECT * FROM users WHERE username = ?", [body.username]
        )
        field, value = "username", body.username
    if user is None:
        raise invalid(field, f"user {value!r} not found")
    return user


@route(
    "DELETE",
    "/api/v1/organizations/{organization_id}/members/{user_id}",
    summary="Remove a user from the organization, with all its roles and teams there",
    tag=TAG,
    status=204,
    errors=(401, 403, 404, 409),
)
async def remove_member(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    user_id = request.match_info["user_id"]
    access.organization(request, organization_id, "member", "delete")
    store = context(request).store
    rows = store.query_all(
        "SELECT a.*, r.name AS role_name, r.permissions AS permissions "
        "FROM role_assignments a JOIN roles r ON r.id = a.role_id "
        "WHERE a.organization_id = ? AND a.user_id = ?",
        [organization_id, user_id],
    )
    if not rows:
        raise not_found("member", user_id)

    # The last deletion also takes the user out of the organization's teams.
    with store.transaction():
        for row in rows:
            delete_assignment(request, row)
    logger.info("User %s removed from organization %s", user_id, organization_id)
    return web.Response(status=204)
