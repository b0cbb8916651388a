"""Teams: groups of an organization's members that hold roles together."""

from __future__ import annotations

import logging
import sqlite3

from aiohttp import web

from zenpro_local.api import access, models, users
from zenpro_local.api.auth import principal
from zenpro_local.api.changes import save_changes
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError, conflict, invalid, not_found
from zenpro_local.api.requests import page, pagination, read_body
from zenpro_local.api.role_assignments import is_member, user_label
from zenpro_local.api.roles import ensure_may_grant
from zenpro_local.api.routing import PAGINATION, route
from zenpro_local.store import new_id, utcnow

logger = logging.getLogger(__name__)

TAG = "teams"

_SELECT = (
    "SELECT t.*, (SELECT count(*) FROM team_members m WHERE m.team_id = t.id) "
    "AS member_count FROM teams t"
)


def serialize(row: dict) -> dict:
    return {
        "id": row["id"],
        "organization_id": row["organization_id"],
        "name": row["name"],
        "description": row["description"],
        "member_count": row.get("member_count", 0),
        "created": row["created"],
        "updated": row["updated"],
    }


def _name_taken(name: str) -> ApiError:
    return conflict(
        f"a team named {name!r} already exists in this organization: choose "
        "another name",
        field="name",
    )


def _team(request: web.Request, action: str) -> dict:
    team_id = request.match_info["team_id"]
    row = context(request).store.query_one(f"{_SELECT} WHERE t.id = ?", [team_id])
    if row is None:
        raise not_found("team", team_id)
    try:
        access.organization(request, row["organization_id"], "team", action)
    except ApiError as error:
        if error.status == 404:
            raise not_found("team", team_id) from None
        raise
    return row


def _ensure_may_grant_team_roles(request: web.Request, team: dict, verb: str) -> None:
    """Joining or leaving a team changes a user's rights by the team's roles."""
    rows = context(request).store.query_all(
        "SELECT a.tenant_id, r.name, r.permissions FROM role_assignments a "
        "JOIN roles r ON r.id = a.role_id WHERE a.team_id = ?",
        [team["id"]],
    )
    for row in rows:
        ensure_may_grant(request, row, team["organization_id"], row["tenant_id"], verb)


@route(
    "POST",
    "/api/v1/organizations/{organization_id}/teams",
    summary="Create a team",
    tag=TAG,
    status=201,
    body=models.TeamCreate,
    response=models.Team,
    errors=(400, 401, 403, 404, 409, 413, 422),
)
async def create_team(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    access.organization(request, organization_id, "team", "create")
    body = await read_body(request, models.TeamCreate)
    store = context(request).store
    now = utcnow()
    row = {
        "id": new_id(),
        "organization_id": organization_id,
        "name": body.name,
        "description": body.description,
        "created": now,
        "updated": now,
    }
    try:
        with store.transaction() as db:
            db["teams"].insert(row)
            store.record_event(
                "created",
                "team",
                row["id"],
                actor_id=principal(request).user_id,
                organization_id=organization_id,
                message=f"team {body.name!r} created",
            )
    except sqlite3.IntegrityError:
        raise _name_taken(body.name) from None
    return web.json_response(serialize({**row, "member_count": 0}), status=201)


@route(
    "GET",
    "/api/v1/organizations/{organization_id}/teams",
    summary="List the organization's teams",
    tag=TAG,
    response=models.Page[models.Team],
    query=PAGINATION,
    errors=(401, 403, 404, 422),
)
async def list_teams(request: web.Request) -> web.Response:
    organization_id = request.match_info["organization_id"]
    access.organization(request, organization_id, "team", "read")
    offset, limit = pagination(request)
    store = context(request).store
    total = store.query_one(
        "SELECT count(*) AS n FROM teams WHERE organization_id = ?", [organization_id]
    )["n"]
    rows = store.query_all(
        f"{_SELECT} WHERE t.organization_id = ? ORDER BY t.name LIMIT ? OFFSET ?",
        [organization_id, limit, offset],
    )
    return page([serialize(row) for row in rows], total, offset, limit)


@route(
    "GET",
    "/api/v1/teams/{team_id}",
    summary="Read a team",
    tag=TAG,
    response=models.Team,
    errors=(401, 403, 404),
)
async def get_team(request: web.Request) -> web.Response:
    return web.json_response(serialize(_team(request, "read")))


@route(
    "PATCH",
    "/api/v1/teams/{team_id}",
    summary="Rename a team or change its description",
    tag=TAG,
    body=models.TeamUpdate,
    response=models.Team,
    errors=(400, 401, 403, 404, 409, 413, 422),
)
async def update_team(request: web.Request) -> web.Response:
    row = _team(request, "update")
    body = await read_body(request, models.TeamUpdate)
    changes = body.model_dump(exclude_none=True)
    if not changes:
        return web.json_response(serialize(row))
    saved = save_changes(
        request,
        "teams",
        row,
        changes,
        object_type="team",
        organization_id=row["organization_id"],
        name_taken=_name_taken,
    )
    return web.json_response(serialize(saved))


@route(
    "DELETE",
    "/api/v1/teams/{team_id}",
    summary="Delete a team and the roles it holds",
    tag=TAG,
    status=204,
    errors=(401, 403, 404),
)
async def delete_team(request: web.Request) -> web.Response:
    row = _team(request, "delete")
    _ensure_may_grant_team_roles(request, row, "remove")
    store = context(request).store
    with store.transaction() as db:
        db["teams"].delete(row["id"])
        store.record_event(
            "deleted",
            "team",
            row["id"],
            actor_id=principal(request).user_id,
            organization_id=row["organization_id"],
            message=f"team {row['name']!r} deleted",
        )
    return web.Response(status=204)


@route(
    "GET",
    "/api/v1/teams/{team_id}/members",
    summary="List a team's members",
    tag=TAG,
    response=models.Page[models.User],
    query=PAGINATION,
    errors=(401, 403, 404, 422),
)
async def list_team_members(request: web.Request) -> web.Response:
    row = _team(request, "read")
    offset, limit = pagination(request)
    rows = context(request).store.query_all(
        "SELECT u.* FROM users u JOIN team_members m ON m.user_id = u.id "
        "WHERE m.team_id = ? ORDER BY u.username LIMIT ? OFFSET ?",
        [row["id"], limit, offset],
    )
    items = [users.serialize(user) for user in rows]
    return page(items, row["member_count"], offset, limit)


@route(
    "POST",
    "/api/v1/teams/{team_id}/members",
    summary="Add an organization member to a team",
    tag=TAG,
    status=204,
    body=models.TeamMemberAdd,
    errors=(400, 401, 403, 404, 409, 413, 422),
)
async def add_team_member(request: web.Request) -> web.Response:
    row = _team(request, "update")
    body = await read_body(request, models.TeamMemberAdd)
    store = context(request).store
    if not is_member(store, row["organization_id"], body.user_id):
        raise invalid(
            "user_id",
            f"user {body.user_id!r} is not a member of the team's organization: "
            "add it to the organization first",
        )
    _ensure_may_grant_team_roles(request, row, "grant")
    member = user_label(store, body.user_id)
    try:
        with store.transaction() as db:
            db["team_members"].insert(
                {"team_id": row["id"], "user_id": body.user_id, "created": utcnow()}
            )
            store.record_event(
                "joined",
                "team",
                row["id"],
                actor_id=principal(request).user_id,
                organization_id=row["organization_id"],
                message=f"{member} added to team {row['name']!r}",
            )
    except sqlite3.IntegrityError:
        raise conflict(f"user {body.user_id!r} is in team {row['name']!r} already") from None
    return web.Response(status=204)


@route(
    "DELETE",
    "/api/v1/teams/{team_id}/members/{user_id}",
    summary="Remove a user from a team",
    tag=TAG,
    status=204,
    errors=(401, 403, 404),
)
async def remove_team_member(request: web.Request) -> web.Response:
    row = _team(request, "update")
    user_id = request.match_info["user_id"]
    _ensure_may_grant_team_roles(request, row, "remove")
    store = context(request).store
    with store.transaction() as db:
        cursor = db.execute(
            "DELETE FROM team_members WHERE team_id = ? AND user_id = ?",
            [row["id"], user_id],
        )
        if cursor.rowcount == 0:
            raise not_found("team member", user_id)
        store.record_event(
            "left",
            "team",
            row["id"],
            actor_id=principal(request).user_id,
            organization_id=row["organization_id"],
            message=f"{user_label(store, user_id)} removed from team {row['name']!r}",
        )
    return web.Response(status=204)
