"""Users and their API keys."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import datetime, timedelta, timezone

from aiohttp import web

from zenpro_local import credentials
from zenpro_local.api import models, sessions
from zenpro_local.api.auth import principal
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError, conflict, forbidden, not_found
from zenpro_local.api.ratelimit import AUTH_LIMITER, client_address
from zenpro_local.api.requests import page, pagination, read_body
from zenpro_local.api.role_assignments import count_admins
from zenpro_local.api.routing import PAGINATION, route
from zenpro_local.authz import Principal
from zenpro_local.store import Store, new_id, utcnow

logger = logging.getLogger(__name__)

TAG = "users"


def serialize(row: dict) -> dict:
    return {
        "id": row["id"],
        "username": row["username"],
        "email": row["email"],
        "full_name": row["full_name"],
        "is_superuser": bool(row["is_superuser"]),
        "is_active": bool(row["is_active"]),
        "created": row["created"],
        "updated": row["updated"],
    }


def serialize_api_key(row: dict) -> dict:
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "note": row["note"],
        "created": row["created"],
        "expires": row["expires"],
        "last_used": row["last_used"],
        "revoked": row["revoked"],
    }


def visible_user_ids_sql(caller: Principal) -> tuple[str, list]:
    """Return a SQL condition on ``users.id`` for the users the caller sees.

    Superusers see everyone; others see themselves and the members of
    their organizations.
    """
    if caller.is_superuser:
        return "1", []
    organizations = sorted(caller.organization_ids())
    marks = ", ".join("?" * len(organizations)) or "NULL"
    condition = (
        "(users.id = ? OR users.id IN (SELECT user_id FROM role_assignments "
        f"WHERE user_id IS NOT NULL AND organization_id IN ({marks})))"
    )
    return condition, [caller.user_id, *organizations]


def find_user(request: web.Request, user_id: str) -> dict:
    """Return a user the caller may see; ``me`` names the caller.

    Raises:
        ApiError: 404 if the user does not exist or is not visible.
    """
    caller = principal(request)
    if user_id == "me":
        user_id = caller.user_id
    condition, params = visible_user_ids_sql(caller)
    row = context(request).store.query_one(
        f"SELECT * FROM users WHERE id = ? AND {condition}", [user_id, *params]
    )
    if row is None:
        raise not_found("user", user_id)
    return row


def create_user_row(
    store: Store,
    body: models.UserCreate,
    actor_id: str | None,
    password_hash: str | None = None,
) -> dict:
    """Insert a user and return its row.

    Args:
        store: the state database.
        body: the new user.
        actor_id: the user who creates it, if any.
        password_hash: the hash of ``body.password`` when the caller made it
            already, off the event loop; otherwise it is made here.

    Raises:
        ApiError: 409 when the username is taken.
    """
    if password_hash is None and body.password:
        password_hash = credentials.hash_password(body.password)
    now = utcnow()
    row = {
        "id": new_id(),
        "username": body.username,
        "email": body.email,
        "full_name": body.full_name,
        "password_hash": password_hash,
        "is_superuser": int(body.is_superuser),
        "is_active": 1,
        "created": now,
        "updated": now,
    }
    try:
        with store.transaction() as db:
            db["users"].insert(row)
            store.record_event(
                "created",
                "user",
                row["id"],
                actor_id=actor_id,
                message=f"user {body.username!r} created",
            )
    except sqlite3.IntegrityError:
        raise conflict(
            f"a user named {body.username!r} already exists: choose another "
            "username",
            field="username",
        ) from None
    return row


async def hash_password(password: str) -> str:
    """Hash ``password`` in a worker thread.

    scrypt takes tens of milliseconds of CPU (see ``credentials``). On the
    event loop that delay would fall on every other request. One client
    changing its password in a loop cut list throughput from about 11,500
    to 1,100 requests per second.
    """
    return await asyncio.to_thread(credentials.hash_password, password)


def insert_api_key(
    store: Store, user_id: str, note: str, expires_in_days: int | None
) -> dict:
    """Create an API key for ``user_id``; the returned dict contains the key."""
    new_key = credentials.generate_api_key()
    expires = None
    if expires_in_days is not None:
        expires = (
            datetime.now(timezone.utc) + timedelta(days=expires_in_days)
        ).isoformat(timespec="microseconds")
    row = {
        "id": new_key.id,
        "user_id": user_id,
        "key_hash": new_key.key_hash,
        "note": note,
        "created": utcnow(),
        "expires": expires,
        "last_used": None,
        "revoked": None,
    }
    store.db["api_keys"].insert(row)
    return {**serialize_api_key(row), "key": new_key.key}


def _require_superuser(caller: Principal, action: str) -> None:
    if not caller.is_superuser:
        raise forbidden(f"{action}: only superusers may")


@route(
    "POST",
    "/api/v1/users",
    summary="Create a user (superusers only)",
    tag=TAG,
    status=201,
    body=models.UserCreate,
    response=models.User,
    errors=(400, 401, 403, 409, 413, 422),
)
async def create_user(request: web.Request) -> web.Response:
    caller = principal(request)
    _require_superuser(caller, "create users")
    body = await read_body(request, models.UserCreate)
    password_hash = await hash_password(body.password) if body.password else None
    row = create_user_row(context(request).store, body, caller.user_id, password_hash)
    logger.info("User %s (%s) created by %s", row["id"], row["username"], caller.username)
    return web.json_response(serialize(row), status=201)


@route(
    "GET",
    "/api/v1/users",
    summary="List the users the caller can see",
    tag=TAG,
    response=models.Page[models.User],
    query=PAGINATION,
    errors=(401, 422),
)
async def list_users(request: web.Request) -> web.Response:
    offset, limit = pagination(request)
    condition, params = visible_user_ids_sql(principal(request))
    store = context(request).store
    total = store.query_one(
        f"SELECT count(*) AS n FROM users WHERE {condition}", params
    )["n"]
    rows = store.query_all(
        f"SELECT * FROM users WHERE {condition} ORDER BY username LIMIT ? OFFSET ?",
        params + [limit, offset],
    )
    return page([serialize(row) for row in rows], total, offset, limit)


@route(
    "GET",
    "/api/v1/users/{user_id}",
    summary="Read a user; 'me' is the caller",
    tag=TAG,
    response=models.User,
    errors=(401, 404),
)
async def get_user(request: web.Request) -> web.Response:
    return web.json_response(serialize(find_user(request, request.match_info["user_id"])))


@route(
    "PATCH",
    "/api/v1/users/{user_id}",
    summary="Change a user; only superusers change is_active and is_superuser",
    tag=TAG,
    body=models.UserUpdate,
    response=models.User,
    errors=(400, 401, 403, 404, 413, 422),
)
async def update_user(request: web.Request) -> web.Response:
    caller = principal(request)
    row = find_user(request, request.match_info["user_id"])
    if row["id"] != caller.user_id:
        _require_superuser(caller, "change another user")
    body = await read_body(request, models.UserUpdate)
    changes = body.model_dump(exclude_none=True)
    current_password = changes.pop("current_password", None)
    if "password" in changes and row["id"] == caller.user_id:
        await _check_current_password(request, row, current_password)
    if {"is_active", "is_superuser"} & changes.keys():
        _require_superuser(caller, "change is_active or is_superuser")
        if row["id"] == caller.user_id:
            raise ApiError(
                422,
                "you cannot deactivate yourself or drop your own superuser "
                "flag: ask another superuser",
            )
    if not changes:
        return web.json_response(serialize(row))
    store = context(request).store
    if "password" in changes:
        changes["password_hash"] = await hash_password(changes.pop("password"))
        # The user may have been deleted while the hash was being made.
        row = store.query_one("SELECT * FROM users WHERE id = ?", [row["id"]])
        if row is None:
            raise not_found("user", request.match_info["user_id"])

    changes["updated"] = utcnow()
    for flag in ("is_active", "is_superuser"):
        if flag in changes:
            changes[flag] = int(changes[flag])
    ended = 0
    with store.transaction() as db:
        db["users"].update(row["id"], changes)
        store.record_event(
            "updated",
            "user",
            row["id"],
            actor_id=caller.user_id,
            message="changed " + ", ".join(sorted(changes)),
        )
        if changes.get("is_active") == 0:
            ended = sessions.end_all_sessions(request, row["id"])
        elif "password_hash" in changes:
            ended = sessions.end_password_sessions(request, row["id"])
    if ended:
        cause = "deactivation" if changes.get("is_active") == 0 else "password change"
        logger.info(
            "Ended %d sessions and tokens of user %s after its %s",
            ended,
            row["id"],
            cause,
        )
    return web.json_response(serialize({**row, **changes}))


async def _check_current_password(
    request: web.Request, row: dict, current_password: str | None
) -> None:
    """Check the current password of a user who changes its own password.

    A copied session cookie or API key then cannot take the account over.
    Wrong passwords count against the failed-authentication limit.

    Raises:
        ApiError: 422 when it is missing, 403 when it is wrong, 429 when
            the caller's address is limited.
    """
    if not row["password_hash"]:
        return
    if current_password is None:
        raise ApiError(
            422,
            "missing current_password: give your current password to change it",
            field="current_password",
        )
    limiter = request.app[AUTH_LIMITER]
    address = client_address(request)
    limiter.check(address)
    matches = await asyncio.to_thread(
        credentials.verify_password, current_password, row["password_hash"]
    )
    if not matches:
        limiter.record_failure(address)
        logger.info("Wrong current password to change the password of %s", row["id"])
        raise ApiError(403, "wrong current_password", field="current_password")


def _organizations_with_sole_admin(store: Store, user_id: str) -> list[str]:
    """Return the names of organizations whose only Admin user is ``user_id``."""
    rows = store.query_all(
        "SELECT o.id, o.name FROM organizations o JOIN role_assignments a "
        "ON a.organization_id = o.id WHERE a.user_id = ? AND a.tenant_id IS NULL "
        "AND a.role_id = 'organization-admin' ORDER BY o.name",
        [user_id],
    )
    return [row["name"] for row in rows if count_admins(store, row["id"]) <= 1]


@route(
    "DELETE",
    "/api/v1/users/{user_id}",
    summary="Delete a user with its API keys and role assignments (superusers only)",
    tag=TAG,
    status=204,
    errors=(401, 403, 404, 409, 422),
)
async def delete_user(request: web.Request) -> web.Response:
    caller = principal(request)
    row = find_user(request, request.match_info["user_id"])
    _require_superuser(caller, "delete users")
    if row["id"] == caller.user_id:
        raise ApiError(422, "you cannot delete yourself: ask another superuser")
    store = context(request).store
    sole = _organizations_with_sole_admin(store, row["id"])
    if sole:
        raise conflict(
            f"user {row['username']!r} is the last Admin of organization "
            f"{', '.join(repr(name) for name in sole)}: make another user "
            "Admin first"
        )
    with store.transaction() as db:
        db["users"].delete(row["id"])
        store.record_event(
            "deleted",
            "user",
            row["id"],
            actor_id=caller.user_id,
            message=f"user {row['username']!r} deleted",
        )
    logger.info("User %s (%s) deleted by %s", row["id"], row["username"], caller.username)
    return web.Response(status=204)


def _key_owner(request: web.Request) -> dict:
    caller = principal(request)
    row = find_user(request, request.match_info["user_id"])
    if row["id"] != caller.user_id:
        _require_superuser(caller, "manage another user's API keys")
    return row


@route(
    "POST",
    "/api/v1/users/{user_id}/api_keys",
    summary="Create an API key; the key is in this response only",
    tag=TAG,
    status=201,
    body=models.ApiKeyCreate,
    response=models.ApiKeyCreated,
    errors=(400, 401, 403, 404, 413, 422),
)
async def create_api_key(request: web.Request) -> web.Response:
    owner = _key_owner(request)
    body = await read_body(request, models.ApiKeyCreate)
    store = context(request).store
    with store.transaction():
        created = insert_api_key(store, owner["id"], body.note, body.expires_in_days)
        store.record_event(
            "created",
            "api_key",
            created["id"],
            actor_id=principal(request).user_id,
            message=f"API key for user {owner['username']!r}",
        )
    logger.info("API key %s created for user %s", created["id"], owner["username"])
    return web.json_response(created, status=201)


@route(
    "GET",
    "/api/v1/users/{user_id}/api_keys",
    summary="List a user's API keys, without the keys themselves",
    tag=TAG,
    response=models.Page[models.ApiKey],
    query=PAGINATION,
    errors=(401, 403, 404, 422),
)
async def list_api_keys(request: web.Request) -> web.Response:
    owner = _key_owner(request)
    offset, limit = pagination(request)
    store = context(request).store
    total = store.query_one(
        "SELECT count(*) AS n FROM api_keys WHERE user_id = ?", [owner["id"]]
    )["n"]
    rows = store.query_all(
        "SELECT * FROM api_keys WHERE user_id = ? ORDER BY created LIMIT ? OFFSET ?",
        [owner["id"], limit, offset],
    )
    return page([serialize_api_key(row) for row in rows], total, offset, limit)


@route(
    "DELETE",
    "/api/v1/users/{user_id}/api_keys/{key_id}",
    summary="Revoke an API key",
    tag=TAG,
    status=204,
    errors=(401, 403, 404),
)
async def revoke_api_key(request: web.Request) -> web.Response:
    owner = _key_owner(request)
    key_id = request.match_info["key_id"]
    store = context(request).store
    row = store.query_one(
        "SELECT * FROM api_keys WHERE id = ? AND user_id = ?", [key_id, owner["id"]]
    )
    if row is None:
        raise not_found("API key", key_id)
    if not row["revoked"]:
        with store.transaction() as db:
            db["api_keys"].update(key_id, {"revoked": utcnow()})
            store.record_event(
                "revoked",
                "api_key",
                key_id,
                actor_id=principal(request).user_id,
                message=f"API key of user {owner['username']!r} revoked",
            )
        logger.info("API key %s of user %s revoked", key_id, owner["username"])
    return web.Response(status=204)
