"""Role assignments: a role given to a user or a team, on an organization or a tenant."""

from __future__ import annotations

import logging
import sqlite3

from aiohttp import web

from zenpro_local.api import access, models
from zenpro_local.api.auth import principal
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError, conflict, invalid, not_found
from zenpro_local.api.requests import page, pagination, read_body
from zenpro_local.api.routing import PAGINATION, QueryParam, route
from zenpro_local.api.roles import ensure_may_grant, find_role
from zenpro_local.authz import allowed
from zenpro_local.store import Store, new_id, utcnow

logger = logging.getLogger(__name__)

TAG = "role assignments"

_SELECT = (
    "SELECT a.*, r.name AS role_name, r.permissions AS permissions "
    "FROM role_assignments a JOIN roles r ON r.id = a.role_id"
)


def serialize(row: dict) -> dict:
    return {
        "id": row["id"],
        "role_id": row["role_id"],
        "role_name": row["role_name"],
        "user_id": row["user_id"],
        "team_id": row["team_id"],
        "organization_id": row["organization_id"],
        "tenant_id": row["tenant_id"],
        "created": row["created"],
        "created_by": row["created_by"],
    }


def is_member(store: Store, organization_id: str, user_id: str) -> bool:
    """Return whether the user holds any role of its own in the organization."""
    return (
        store.query_one(
            "SELECT 1 FROM role_assignments WHERE organization_id = ? AND user_id = ?",
            [organization_id, user_id],
        )
        is not None
    )


def user_label(store: Store, user_id: str) -> str:
    """Return ``user '<username>'`` for messages, with the id if none is found."""
    user = store.query_one("SELECT username FROM users WHERE id = ?", [user_id])
    return f"user {user['username'] if user else user_id!r}"


def describe(
    store: Store, user_id: str | None, team_id: str | None, tenant_id: str | None
) -> tuple[str, str]:
    """Return the user or team of an assignment and its scope, by name, for messages.

    A name that is not found is replaced by the id.
    """
    if user_id:
        holder = user_label(store, user_id)
    else:
        team = store.query_one("SELECT name FROM teams WHERE id = ?", [team_id])
        holder = f"team {team['name'] if team else team_id!r}"
    if not tenant_id:
        return holder, "the organization"
    tenant = store.query_one("SELECT name FROM tenants WHERE id = ?", [tenant_id])
    return holder, f"tenant {tenant['name'] if tenant else tenant_id!r}"


def count_admins(store: Store, organization_id: str) -> int:
    return store.query_one(
        "SELECT count(*) AS n FROM role_assignments WHERE organization_id = ? "
        "AND tenant_id IS NULL AND role_id = 'organization-admin' "
        "AND user_id IS NOT NULL",
        [organization_id],
    )["n"]


def insert_assignment(
    store: Store,
    *,
    role: dict,
    organization_id: str,
    user_id: str | None,
    team_id: str | None,
    tenant_id: str | None,
    actor_id: str,
) -> dict:
    """Insert a role assignment and its event; return the row.

    Raises:
        ApiError: 409 when the same assignment exists already.
    """
    row = {
        "id": new_id(),
        "role_id": role["id"],
        "user_id": user_id,
        "team_id": team_id,
        "organization_id": organization_id,
        "tenant_id": tenant_id,
        "created": utcnow(),
        "created_by": actor_id,
    }
    holder, where = describe(store, user_id, team_id, tenant_id)
    try:
        with store.transaction() as db:
            db["role_assignments"].insert(row)
            store.record_event(
                "granted",
                "role_assignment",
                row["id"],
                actor_id=actor_id,
                organization_id=organization_id,
                tenant_id=tenant_id,
                message=f"role {role['name']!r} given to {holder} on {where}",
            )
    except sqlite3.IntegrityError:
        raise conflict(f"{holder} already has role {role['name']!r} on {where}") from None
    return {**row, "role_name": role["name"]}


def delete_assignment(request: web.Request, row: dict) -> None:
    """Remove one assignment after checking the caller may take it away.

    A user whose last role of its own in the organization goes is no longer
    a member, so it also leaves the organization's teams.

    Raises:
        ApiError: 403 if the role, or a team the user leaves, gives more than
            the caller holds, 409 if it is the organization's last Admin.
    """
    store = context(request).store
    role = {"name": row["role_name"], "permissions": row["permissions"]}
    ensure_may_grant(request, role, row["organization_id"], row["tenant_id"], "remove")
    if (
        row["role_id"] == "organization-admin"
        and row["user_id"]
        and row["tenant_id"] is None
        and count_admins(store, row["organization_id"]) <= 1
    ):
        raise conflict(
            "this is the organization's last Admin: make another user Admin first"
        )
    holder, where = describe(store, row["user_id"], row["team_id"], row["tenant_id"])
    with store.transaction() as db:
        db["role_assignments"].delete(row["id"])
        store.record_event(
            "revoked",
            "role_assignment",
            row["id"],
            actor_id=principal(request).user_id,
            organization_id=row["organization_id"],
            tenant_id=row["tenant_id"],
            message=f"role {row['role_name']!r} taken from {holder} on {where}",
        )
        user_id = row["user_id"]
        if user_id and not is_member(store, row["organization_id"], user_id):
            _leave_teams(request, row["organization_id"], user_id)


def _leave_teams(request: web.Request, organization_id: str, user_id: str) -> None:
    store = context(request).store
    team_roles = store.query_all(
        "SELECT a.tenant_id, r.name, r.permissions FROM team_members m "
        "JOIN teams t ON t.id = m.team_id "
        "JOIN role_assignments a ON a.team_id = t.id "
        "JOIN roles r ON r.id = a.role_id "
        "WHERE m.user_id = ? AND t.organization_id = ?",
        [user_id, organization_id],
    )
    for role in team_roles:
        ensure_may_grant(request, role, organization_id, role["tenant_id"], "remove")
    store.db.execute(
        "DELETE FROM team_members WHERE user_id = ? AND team_id IN "
        "(SELECT id FROM teams WHERE organization_id = ?)",
        [user_id, organization_id],
    )


def not_in_organization(kind: str, identifier: str, field: str) -> ApiError:
    """Return the 404 for a request body naming an object outside the organization.

    Objects of other organizations get the same response as unknown ids.
    """
    return ApiError(
        404, f"{kind} {identifier!r} not found in this organization", field=field
    )


def _check_holder(
    store: Store, organization_id: str, body: models.RoleAssignmentCreate
) -> None:
    if (body.user_id is None) == (body.team_id is None):
        raise invalid("user_id", "give exactly one of user_id and team_id")
    if body.user_id is not None:
        if not is_member(store, organization_id, body.user_id):
            raise invalid(
                "user_id",
                f"user {body.user_id!r} is not a member of this organization: "
                "add it with POST /api/v1/organizations/{id}/members first",
            )
    else:
        team = store.query_one(
            "SELECT 1 FROM teams WHERE id = ? AND organization_id = ?",
            [body.team_id, organization_id],
        )
        if team is None:
            raise not_in_organization("team", body.team_id, "team_id")


def _check_place(
    request: web.Request, organization_id: str, role: dict, tenant_id: str | None
) -> None:
    if role["scope"] == "tenant" and tenant_id is None:
        raise invalid("tenant_id", f"role {role['name']!r} is a tenant role: name the tenant")
    if role["scope"] == "organization" and tenant_id is not None:
        raise invalid(
            "tenant_id",
            f"role {role['name']!r} is an organization role: leave tenant_id out",
        )
    if tenant_id is None:
        access.organization(request, organization_id, "role_assignment", "create")
        return
    try:
        tenant = access.tenant(
            request, tenant_id, "role_assignment", "create", include_deleted=False
        )
    except ApiError as error:
        if error.status == 404:
            raise not_in_organization("tenant", tenant_id, "tenant_id") from None
        raise
    if tenant["organization_id"] != organization_id:
        raise not_in_organization("tenant", tenant_id, "tenant_id")


@route(
    "POST",
    "/api/v1/organizations/{organization_id}/role_assignments",
    summary="Give a role to a user or team, on the organization or one tenant",
    tag=TAG,
    status=201,
    body=models.RoleAssignmentCreate,
    response=models.RoleAssignment,
    errors=(400, 401, 403, 404, 409, 413, 422),
)
async def create_role_assignment(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    access.organization(request, organization_id)
    body = await read_body(request, models.RoleAssignmentCreate)
    store = context(request).store

    role = find_role(store, organization_id, body.role_id)
    if role is None:
        raise not_in_organization("role", body.role_id, "role_id")
    _check_place(request, organization_id, role, body.tenant_id)
    _check_holder(store, organization_id, body)
    ensure_may_grant(request, role, organization_id, body.tenant_id)

    row = insert_assignment(
        store,
        role=role,
        organization_id=organization_id,
        user_id=body.user_id,
        team_id=body.team_id,
        tenant_id=body.tenant_id,
        actor_id=principal(request).user_id,
    )
    return web.json_response(serialize(row), status=201)


@route(
    "GET",
    "/api/v1/organizations/{organization_id}/role_assignments",
    summary="List role assignments, optionally of one user, team or tenant",
    tag=TAG,
    response=models.Page[models.RoleAssignment],
    query=PAGINATION
    + (
        QueryParam("user_id", "string", "Only this user's own assignments."),
        QueryParam("team_id", "string", "Only this team's assignments."),
        QueryParam("tenant_id", "string", "Only assignments on this tenant."),
    ),
    errors=(401, 403, 404, 422),
)
async def list_role_assignments(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    caller = principal(request)
    access.organization(request, organization_id)
    offset, limit = pagination(request)

    conditions = ["a.organization_id = ?"]
    params: list = [organization_id]
    for name in ("user_id", "team_id", "tenant_id"):
        if request.query.get(name):
            conditions.append(f"a.{name} = ?")
            params.append(request.query[name])

    tenant_id = request.query.get("tenant_id")
    if not allowed(caller, "role_assignment", "read", organization_id, tenant_id):
        raise ApiError(403, "you do not have permission to read role assignments here")

    where = " AND ".join(conditions)
    store = context(request).store
    total = store.query_one(
        f"SELECT count(*) AS n FROM role_assignments a WHERE {where}", params
    )["n"]
    rows = store.query_all(
        f"{_SELECT} WHERE {where} ORDER BY a.created LIMIT ? OFFSET ?",
        params + [limit, offset],
    )
    return page([serialize(row) for row in rows], total, offset, limit)


@route(
    "DELETE",
    "/api/v1/role_assignments/{assignment_id}",
    summary="Take a role away",
    tag=TAG,
    status=204,
    errors=(401, 403, 404, 409),
)
async def delete_role_assignment(request: web.Request) -> web.Response:
    assignment_id = request.match_info["assignment_id"]
    store = context(request).store
    row = store.query_one(f"{_SELECT} WHERE a.id = ?", [assignment_id])
    if row is None:
        raise not_found("role assignment", assignment_id)
    try:
        if row["tenant_id"]:
            access.tenant(request, row["tenant_id"], "role_assignment", "delete")
        else:
            access.organization(
                request, row["organization_id"], "role_assignment", "delete"
            )
    except ApiError as error:
        if error.status == 404:
            raise not_found("role assignment", assignment_id) from None
        raise
    delete_assignment(request, row)
    return web.Response(status=204)
