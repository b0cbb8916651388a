"""Authentication: who is calling, from the ``Authorization`` header or the
dashboard's session cookie."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from aiohttp import web

from zenpro_local import credentials
from zenpro_local.api import sessions
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError, Handler
from zenpro_local.api.ratelimit import AUTH_LIMITER, client_address
from zenpro_local.api.routing import is_public
from zenpro_local.authz import Principal, load_principal
from zenpro_local.store import Store, utcnow

logger = logging.getLogger(__name__)

PRINCIPAL = web.RequestKey("principal", Principal)

# last_used is written at most this often per key, so reads stay reads.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the caller's :class:`Principal` to API requests that need one."""
    # Commits of other SQLite connections invalidate cached grants from here.
    context(request).store.refresh()
    if is_public(request) or not request.path.startswith("/api/"):
        return await handler(request)

    header = request.headers.get("Authorization", "")
    session_token = request.cookies.get(sessions.COOKIE_NAME)
    if not header and session_token:
        request[PRINCIPAL] = _authenticate_session(request, session_token)
        return await handler(request)

    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _unauthorized(
            "missing credentials: send 'Authorization: Bearer <API key>'"
        )
    try:
        caller = authenticate_api_key(context(request).store, key.strip())
    except ApiError as error:
        limiter = request.app[AUTH_LIMITER]
        raise limiter.failed(client_address(request), error) from None
    request[PRINCIPAL] = caller
    return await handler(request)


def _authenticate_session(request: web.Request, token: str) -> Principal:
    """Return the principal of the dashboard session ``token``.

    Session tokens are 256-bit random values, and an expired one is sent by
    every open dashboard tab, so failures here are not rate limited.

    Raises:
        ApiError: 401 for an invalid session, 403 for a state-changing
            request without the session's CSRF token.
    """
    caller = sessions.authenticate_session(context(request).store, token)
    if request.method not in sessions.SAFE_METHODS:
        sent = request.headers.get(sessions.CSRF_HEADER, "")
        if not sessions.csrf_matches(token, sent):
            raise sessions.csrf_failed()
    return caller


def authenticate_api_key(store: Store, key: str) -> Principal:
    """Return the principal of a valid API key.

    The key's row, its user and the user's grants are cached in
    ``store.cache`` until the state changes. The key itself, revocation,
    expiry and the user's status are still checked on every call.

    Raises:
        ApiError: 401 for a malformed, unknown, revoked or expired key, or a
            deactivated user. The message never contains the key.
    """
    key_id = credentials.parse_api_key(key)
    if key_id is None:
        raise _unauthorized("invalid API key: it is malformed or truncated")

    cache_key = ("api_key", key_id)
    holder = store.cache.get(cache_key)
    if holder is None:
        holder = _load_key_holder(store, key_id)
    row, user, loaded = holder

    if row is None or not credentials.api_key_matches(key, row["key_hash"]):
        raise _unauthorized("invalid API key: it is not known")
    if row["revoked"]:
        raise _unauthorized("API key revoked: create a new one")
    now = datetime.now(timezone.utc)
    if row["expires"] and datetime.fromisoformat(row["expires"]) <= now:
        raise _unauthorized("API key expired: create a new one")
    if user is None or not user["is_active"]:
        raise _unauthorized("user deactivated: ask an administrator")

    touched = _touch(store, row, now)
    if loaded is not None and not touched:
        return loaded

    principal = loaded or load_principal(store, user, api_key_id=key_id)
    if touched:
        row = {**row, "last_used": touched}
    store.cache.put(cache_key, (row, user, principal), _size(principal))
    return principal


def _load_key_holder(
    store: Store, key_id: str
) -> tuple[dict | None, dict | None, Principal | None]:
    row = store.query_one("SELECT * FROM api_keys WHERE id = ?", [key_id])
    if row is None:
        return None, None, None
    user = store.query_one("SELECT * FROM users WHERE id = ?", [row["user_id"]])
    return row, user, None


def _size(principal: Principal) -> int:
    """Return a rough size in bytes of a cached key holder."""
    return 2048 + 256 * len(principal.grants)


def _touch(store: Store, row: dict, now: datetime) -> str | None:
    """Record that the key was used; return the new ``last_used``, if written."""
    last_used = row["last_used"]
    if last_used and now - datetime.fromisoformat(last_used) < _LAST_USED_RESOLUTION:
        return None
    last_used = utcnow()
    store.db.execute(
        "UPDATE api_keys SET last_used = ? WHERE id = ?", [last_used, row["id"]]
    )
    return last_used


def principal(request: web.Request) -> Principal:
    """Return the authenticated caller of ``request``."""
    return request[PRINCIPAL]
