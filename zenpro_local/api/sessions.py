"""Browser sessions for the dashboard: sign in, read the session, sign out.

Signing in with a username and password, or with an API key, sets a
session cookie that is ``HttpOnly``, ``Secure`` and ``SameSite=Strict``.
The cookie holds a random token; the state database stores only its
SHA-256 hash.

Every state-changing request authenticated by the cookie must also send
the session's CSRF token in the ``X-CSRF-Token`` header. The token is
derived from the session token, so a page on another site can neither
read nor guess it. The dashboard's script reads it from
``GET /api/v1/session``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta, timezone
from typing import Annotated

from aiohttp import web
from pydantic import ConfigDict, Field

from zenpro_local import credentials
from zenpro_local.api import models
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError
from zenpro_local.api.ratelimit import AUTH_LIMITER, client_address
from zenpro_local.api.requests import read_body
from zenpro_local.api.routing import route
from zenpro_local.authz import Principal, load_principal
from zenpro_local.store import Store, new_id, utcnow

logger = logging.getLogger(__name__)

TAG = "sessions"
COOKIE_NAME = "zenpro_session"
CSRF_HEADER = "X-CSRF-Token"
# A session ends this long after sign-in, whatever its activity.
SESSION_LIFETIME = timedelta(hours=12)
# Methods that change nothing and so need no CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _given(*names: str) -> dict:
    """Return a JSON Schema that holds when every field in ``names`` is a string."""
    return {
        "required": list(names),
        "properties": {name: {"type": "string"} for name in names},
    }


class SessionCreate(models.Request):
    # Exactly one way to sign in, as create_session checks: a username with
    # a password, or an API key. A null field counts as left out.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {**_given("username", "password"), "not": _given("api_key")},
                {
                    **_given("api_key"),
                    "not": {"anyOf": [_given("username"), _given("password")]},
                },
            ]
        }
    )

    username: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    password: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    api_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class Session(models.Response):
    user: models.User
    csrf_token: str | None = Field(
        description="Send it as X-CSRF-Token with every state-changing request."
    )
    expires: str | None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session_token: str) -> str:
    """Return the CSRF token that belongs to ``session_token``."""
    return hmac.new(session_token.encode(), b"csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, sent: str) -> bool:
    return hmac.compare_digest(csrf_token(session_token), sent)


def authenticate_session(store: Store, token: str) -> Principal:
    """Return the principal of a valid session token.

    Raises:
        ApiError: 401 for an unknown or expired session, a deactivated user,
            or a session whose API key was revoked or has expired.
    """
    row = store.query_one(
        "SELECT * FROM sessions WHERE token_hash = ?", [_token_hash(token)]
    )
    now = datetime.now(timezone.utc)
    if row is None or datetime.fromisoformat(row["expires"]) <= now:
        raise _signed_out("session expired or unknown: sign in again")
    if row["api_key_id"] and not _key_valid(store, row["api_key_id"], now):
        raise _signed_out(
            "the API key of this session was revoked or has expired: sign in again"
        )
    user = store.query_one("SELECT * FROM users WHERE id = ?", [row["user_id"]])
    if user is None or not user["is_active"]:
        raise _signed_out("user deactivated: ask an administrator")
    return load_principal(store, user, api_key_id=row["api_key_id"])


def _key_valid(store: Store, key_id: str, now: datetime) -> bool:
    key = store.query_one(
        "SELECT revoked, expires FROM api_keys WHERE id = ?", [key_id]
    )
    if key is None or key["revoked"]:
        return False
    return not key["expires"] or datetime.fromisoformat(key["expires"]) > now


def _signed_out(message: str) -> ApiError:
    return ApiError(401, message, code="session_expired")


def _open_session(
    store: Store, user_id: str, api_key_id: str | None
) -> tuple[str, str]:
    """Insert a session; return its token and its expiry time."""
    token = secrets.token_urlsafe(32)
    expires = (datetime.now(timezone.utc) + SESSION_LIFETIME).isoformat(
        timespec="microseconds"
    )
    with store.transaction() as db:
        db.execute("DELETE FROM sessions WHERE expires <= ?", [utcnow()])
        db["sessions"].insert(
            {
                "id": new_id(),
                "token_hash": _token_hash(token),
                "user_id": user_id,
                "api_key_id": api_key_id,
                "created": utcnow(),
                "expires": expires,
            }
        )
    return token, expires


def _set_cookie(response: web.Response, token: str) -> None:
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        secure=True,
        httponly=True,
        samesite="Strict",
    )


async def _user_from_password(request: web.Request, body: SessionCreate) -> dict:
    """Return the active user whose password matches, counting failures.

    The limit is consulted before the password is checked, so a limited
    client learns nothing from its guesses.
    """
    limiter = request.app[AUTH_LIMITER]
    address = client_address(request)
    limiter.check(address)
    store = context(request).store
    user = store.query_one(
        "SELECT * FROM users WHERE username = ?", [body.username]
    )
    stored = user["password_hash"] if user else None
    # Unknown users and users without a password cost one scrypt too, so the
    # response time does not tell which usernames exist. scrypt takes tens
    # of milliseconds: the event loop stays free meanwhile.
    matches = await asyncio.to_thread(
        credentials.verify_password,
        body.password,
        stored or credentials.decoy_password_hash(),
    )
    if not (matches and stored and user["is_active"]):
        limiter.record_failure(address)
        # An unknown name may be a password typed in the wrong field, so
        # only known usernames reach the log.
        who = repr(body.username) if user else "an unknown user"
        logger.info("Sign-in as %s from %s failed", who, address)
        raise ApiError(401, "sign-in failed: wrong username or password")
    return user


def _check_password_unchanged(store: Store, user: dict) -> None:
    """Reject a sign-in whose password changed while it was being checked.

    The check runs in a thread, and a password change that commits
    meanwhile ends every password session: one opened after it with the
    old password would outlive the change.

    Raises:
        ApiError: 401 when the user's password or status changed.
    """
    current = store.query_one(
        "SELECT password_hash, is_active FROM users WHERE id = ?", [user["id"]]
    )
    if current is None or current["password_hash"] != user["password_hash"]:
        raise ApiError(401, "sign-in failed: the password changed, sign in again")
    if not current["is_active"]:
        raise ApiError(401, "sign-in failed: wrong username or password")


def _user_from_api_key(request: web.Request, key: str) -> tuple[dict, str]:
    # auth imports this module for its middleware, so import it here.
    from zenpro_local.api.auth import authenticate_api_key

    store = context(request).store
    try:
        caller = authenticate_api_key(store, key)
    except ApiError as error:
        limiter = request.app[AUTH_LIMITER]
        raise limiter.failed(client_address(request), error) from None
    user = store.query_one("SELECT * FROM users WHERE id = ?", [caller.user_id])
    return user, caller.api_key_id


@route(
    "POST",
    "/api/v1/session",
    summary="Sign in with a username and password or an API key; sets the "
    "session cookie",
    tag=TAG,
    status=201,
    body=SessionCreate,
    response=Session,
    public=True,
    errors=(400, 401, 413, 415, 422, 429),
)
async def create_session(request: web.Request) -> web.Response:
    # A form on another site cannot send this content type without CORS.
    if request.content_type != "application/json":
        raise ApiError(415, "send the sign-in as application/json")
    body = await read_body(request, SessionCreate)
    if body.api_key is not None:
        if body.username is not None or body.password is not None:
            raise ApiError(
                422, "give either an API key or a username and password, not both"
            )
        user, api_key_id = _user_from_api_key(request, body.api_key.strip())
    elif body.username is not None and body.password is not None:
        user, api_key_id = await _user_from_password(request, body), None
        _check_password_unchanged(context(request).store, user)
    else:
        raise ApiError(
            422, "give a username and password, or an API key", field="username"
        )

    from zenpro_local.api.users import serialize

    token, expires = _open_session(context(request).store, user["id"], api_key_id)
    logger.info("User %s signed in to the dashboard", user["username"])
    response = web.json_response(
        {
            "user": serialize(user),
            "csrf_token": csrf_token(token),
            "expires": expires,
        },
        status=201,
    )
    _set_cookie(response, token)
    return response


@route(
    "GET",
    "/api/v1/session",
    summary="Read the caller's session: its user and CSRF token",
    tag=TAG,
    response=Session,
    errors=(401,),
)
async def get_session(request: web.Request) -> web.Response:
    from zenpro_local.api.auth import principal
    from zenpro_local.api.users import serialize

    caller = principal(request)
    store = context(request).store
    user = store.query_one("SELECT * FROM users WHERE id = ?", [caller.user_id])
    token = request.cookies.get(COOKIE_NAME)
    row = None
    if token and "Authorization" not in request.headers:
        row = store.query_one(
            "SELECT expires FROM sessions WHERE token_hash = ?", [_token_hash(token)]
        )
    return web.json_response(
        {
            "user": serialize(user),
            "csrf_token": csrf_token(token) if row else None,
            "expires": row["expires"] if row else None,
        }
    )


@route(
    "DELETE",
    "/api/v1/session",
    summary="Sign out: end the session and clear its cookie",
    tag=TAG,
    status=204,
    public=True,
    errors=(403,),
)
async def delete_session(request: web.Request) -> web.Response:
    token = request.cookies.get(COOKIE_NAME)
    if token:
        # Signing out is a state change too: a foreign page may not force it.
        sent = request.headers.get(CSRF_HEADER, "")
        if not csrf_matches(token, sent):
            raise csrf_failed()
        store = context(request).store
        with store.transaction() as db:
            db.execute(
                "DELETE FROM sessions WHERE token_hash = ?", [_token_hash(token)]
            )
    response = web.Response(status=204)
    response.del_cookie(
        COOKIE_NAME, path="/", secure=True, httponly=True, samesite="Strict"
    )
    return response


def end_password_sessions(request: web.Request, user_id: str) -> int:
    """End what the user's old password opened, except the caller's session.

    That is every dashboard session and management-plane token (``zenml
    login`` in a browser) opened with a password. The caller's session is
    kept only when it authenticated this request. Returns the number of
    sessions and tokens ended.
    """
    token = request.cookies.get(COOKIE_NAME)
    authenticated_by_cookie = token and "Authorization" not in request.headers
    keep = _token_hash(token) if authenticated_by_cookie else ""
    db = context(request).store.db
    sessions = db.execute(
        "DELETE FROM sessions WHERE user_id = ? AND api_key_id IS NULL "
        "AND token_hash != ?",
        [user_id, keep],
    )
    tokens = db.execute(
        "DELETE FROM mp_tokens WHERE user_id = ? AND api_key_id IS NULL",
        [user_id],
    )
    return sessions.rowcount + tokens.rowcount


def end_all_sessions(request: web.Request, user_id: str) -> int:
    """End every session and management-plane token of a deactivated user.

    Reactivating the user then opens nothing again. Returns the number
    ended.
    """
    db = context(request).store.db
    sessions = db.execute("DELETE FROM sessions WHERE user_id = ?", [user_id])
    tokens = db.execute("DELETE FROM mp_tokens WHERE user_id = ?", [user_id])
    return sessions.rowcount + tokens.rowcount


def csrf_failed() -> ApiError:
    return ApiError(
        403,
        f"missing or wrong {CSRF_HEADER} header: reload the dashboard and try again",
        code="csrf_failed",
    )
