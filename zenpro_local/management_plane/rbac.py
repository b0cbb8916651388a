"""Permission checks, allowed ids, shares and deletions for tenant servers.

Resource strings read ``[<project id>:]<type>[/<resource id>]``; a type
without an id means creating or listing. Every answer comes from
:func:`zenpro_local.authz.allowed_on_resource`, so the tenant enforces the
same roles as the admin API. Nothing is cached beyond ``store.cache``,
which is emptied on every change of state: a role taken away counts on the
tenant's next request. Only a session's validity is also kept for a few
seconds (:data:`SESSION_CACHE_SECONDS`), as sessions expire on their own.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError
from zenpro_local.api.requests import json_body
from zenpro_local.management_plane.routing import route
from zenpro_local.authz import Principal, allowed, allowed_on_resource, load_principal
from zenpro_local.management_plane import PREFIX, bearer, logins
from zenpro_local.store import Store, utcnow

logger = logging.getLogger(__name__)

TAG = "management plane"
# Largest number of resources one permission check may name.
MAX_RESOURCES = 1000
# Seconds a session's key check is reused while the state does not change.
SESSION_CACHE_SECONDS = 5.0


def parse_resource(resource: str) -> tuple[str, str | None]:
    """Return the ``(type, id)`` of a resource string; id may be None."""
    _, _, type_and_id = resource.rpartition(":")
    resource_type, _, resource_id = type_and_id.partition("/")
    return resource_type, resource_id or None


def _caller(store: Store, user_id: str) -> Principal | None:
    """Return the active user's principal, cached until the state changes."""
    key = ("mp_principal", user_id)
    cached = store.cache.get(key)
    if cached is not None:
        return cached[0]
    user = store.query_one("SELECT * FROM users WHERE id = ?", [user_id])
    principal = load_principal(store, user) if user and user["is_active"] else None
    teams = store.query_all(
        "SELECT team_id FROM team_members WHERE user_id = ?", [user_id]
    )
    store.cache.put(key, (principal, [row["team_id"] for row in teams]))
    return principal


def _team_ids(store: Store, user_id: str) -> list[str]:
    _caller(store, user_id)
    return store.cache.get(("mp_principal", user_id))[1]


def _shares(store: Store, tenant_id: str, user_id: str) -> dict[str, set[str]]:
    """Return resource string -> actions shared with the user or its teams.

    Cached until the state changes, like the grants.
    """
    key = ("mp_shares", tenant_id, user_id)
    cached = store.cache.get(key)
    if cached is None:
        cached = _load_shares(store, tenant_id, user_id)
        store.cache.put(key, cached, 64 + 128 * len(cached))
    return cached


def _session_valid(store: Store, tenant_id: str, user_id: str) -> bool:
    """Return :func:`logins.session_valid`, cached for SESSION_CACHE_SECONDS.

    A revoked key changes the state and empties the cache at once; the
    expiry only bounds how late a key that expires on its own is noticed.
    """
    key = ("mp_session", tenant_id, user_id)
    cached = store.cache.get(key)
    if cached is None or cached[1] < time.monotonic():
        valid = logins.session_valid(store, tenant_id, user_id)
        cached = (valid, time.monotonic() + SESSION_CACHE_SECONDS)
        store.cache.put(key, cached)
    return cached[0]


def _load_shares(store: Store, tenant_id: str, user_id: str) -> dict[str, set[str]]:
    teams = _team_ids(store, user_id)
    marks = ", ".join("?" * len(teams)) or "NULL"
    rows = store.query_all(
        f"""
        SELECT resource, actions FROM resource_shares
        WHERE tenant_id = ? AND (user_id = ? OR team_id IN ({marks}))
        """,
        [tenant_id, user_id, *teams],
    )
    shares: dict[str, set[str]] = {}
    for row in rows:
        shares.setdefault(row["resource"], set()).update(json.loads(row["actions"]))
    return shares


def _query(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    if not value:
        raise ApiError(400, f"missing query parameter {name!r}", field=name)
    return value


def check(
    store: Store, tenant: dict, user_id: str, action: str, resources: list[str]
) -> dict[str, bool]:
    """Return, for each resource string, whether the user may do ``action``."""
    principal = _caller(store, user_id)
    if principal is None or not _session_valid(store, tenant["id"], user_id):
        return {resource: False for resource in resources}
    shares = _shares(store, tenant["id"], user_id)
    decisions = {}
    for resource in resources:
        resource_type, _ = parse_resource(resource)
        decisions[resource] = allowed_on_resource(
            principal,
            resource_type,
            action,
            tenant["organization_id"],
            tenant["id"],
            shares.get(resource, ()),
        )
    return decisions


@route(
    "POST",
    PREFIX + "/rbac/check_permissions",
    summary="Decide an action on a batch of resources for one user",
    tag=TAG,
    public=True,
    errors=(400, 401, 403),
)
async def check_permissions(request: web.Request) -> web.Response:
    tenant = bearer.tenant_caller(request)
    user_id = _query(request, "user_id")
    action = _query(request, "action")
    body = await request.read()
    store = context(request).store

    # Tenant servers send the same checks again and again (every list page,
    # every reload), so the encoded response is kept until the state
    # changes. The session is still checked, because it can expire on its own.
    key = ("mp_check", tenant["id"], user_id, action, body)
    encoded = store.cache.get(key)
    if encoded is None or not _session_valid(store, tenant["id"], user_id):
        resources = _resource_list(body)
        decisions = check(store, tenant, user_id, action, resources)
        encoded = json.dumps(decisions).encode()
        store.cache.put(key, encoded, 256 + len(body) + len(encoded))
    return json_body(encoded)


def _resource_list(body: bytes) -> list[str]:
    """Return the resource strings of a permission check's body.

    Raises:
        ApiError: 400 unless the body is a JSON list of at most
            MAX_RESOURCES entries.
    """
    try:
        resources = json.loads(body)
    except (ValueError, RecursionError):
        resources = None
    if not isinstance(resources, list) or len(resources) > MAX_RESOURCES:
        raise ApiError(
            400,
            f"the body must be a JSON list of at most {MAX_RESOURCES} "
            "resource strings",
        )
    return [str(resource) for resource in resources]


@route(
    "GET",
    PREFIX + "/rbac/allowed_resource_ids",
    summary="List the ids of one resource type a user may act on",
    tag=TAG,
    public=True,
    errors=(400, 401, 403),
)
async def allowed_resource_ids(request: web.Request) -> web.Response:
    tenant = bearer.tenant_caller(request)
    user_id = _query(request, "user_id")
    resource = _query(request, "resource")
    action = _query(request, "action")
    store = context(request).store
    resource_type, _ = parse_resource(resource)

    principal = _caller(store, user_id)
    if principal is None or not _session_valid(store, tenant["id"], user_id):
        return web.json_response({"full_access": False, "ids": []})
    if allowed(principal, resource_type, action, tenant["organization_id"], tenant["id"]):
        return web.json_response({"full_access": True, "ids": []})
    ids = sorted(
        resource_id
        for shared, actions in _shares(store, tenant["id"], user_id).items()
        for shared_type, resource_id in [parse_resource(shared)]
        if shared_type == resource_type and resource_id and action in actions
    )
    return web.json_response({"full_access": False, "ids": ids})


@route(
    "POST",
    PREFIX + "/rbac/resource_members",
    summary="Set the actions a user or team has on one resource",
    tag=TAG,
    public=True,
    errors=(400, 401, 403),
)
async def update_resource_members(request: web.Request) -> web.Response:
    tenant = bearer.tenant_caller(request)
    body = await request.json()
    if not isinstance(body, dict) or not body.get("resource"):
        raise ApiError(400, "the body must name a 'resource'", field="resource")
    user_id, team_id = body.get("user_id"), body.get("team_id")
    if bool(user_id) == bool(team_id):
        raise ApiError(400, "name exactly one of 'user_id' and 'team_id'")
    resource = str(body["resource"])
    actions = sorted({str(action) for action in body.get("actions") or []})
    store = context(request).store

    with store.transaction() as db:
        db.execute(
            """
            DELETE FROM resource_shares
            WHERE tenant_id = ? AND resource = ?
              AND coalesce(user_id, '') = ? AND coalesce(team_id, '') = ?
            """,
            [tenant["id"], resource, user_id or "", team_id or ""],
        )
        if actions:
            db["resource_shares"].insert(
                {
                    "tenant_id": tenant["id"],
                    "resource": resource,
                    "resource_type": parse_resource(resource)[0],
                    "user_id": user_id,
                    "team_id": team_id,
                    "actions": json.dumps(actions),
                    "shared_by": body.get("sharing_user_id"),
                    "created": utcnow(),
                }
            )
    logger.info(
        "Tenant %s: %s shared %s with %s",
        tenant["id"], ",".join(actions) or "nothing", resource, user_id or team_id,
    )
    return web.json_response({"resource": resource, "actions": actions})


@route(
    "DELETE",
    PREFIX + "/rbac/resources",
    summary="Forget the shares of deleted resources",
    tag=TAG,
    public=True,
    errors=(401, 403),
)
async def delete_resources(request: web.Request) -> web.Response:
    tenant = bearer.tenant_caller(request)
    resources = request.query.getall("resources", [])
    store = context(request).store
    if resources:
        marks = ", ".join("?" * len(resources))
        store.db.execute(
            f"DELETE FROM resource_shares WHERE tenant_id = ? AND resource IN ({marks})",
            [tenant["id"], *resources],
        )
    return web.json_response({"deleted": len(resources)})
