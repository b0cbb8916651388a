"""Management-plane access tokens: issue, verify, expire, revoke.

A token is an opaque random string; only its SHA-256 hash is stored. A
``user`` token stands for a person (or one of its API keys) and is what the
stock ``zenml`` CLI presents; a ``tenant`` token stands for a tenant server
logged in with its client credentials. Every use re-checks expiry, the
user's status and the API key the token came from, so a deactivated user
or a revoked key is refused on the next request.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from zenpro_local.api.errors import ApiError
from zenpro_local.store import Store, new_id, utcnow

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "zpmp_"
# Seconds a token lives. ZenML servers log in again 5 minutes before
# expiry, so this must stay well above 300.
TOKEN_LIFETIME = 3600


@dataclass(frozen=True)
class TokenHolder:
    """The user or tenant behind a verified token."""

    kind: str  # "user" or "tenant"
    user: dict | None
    tenant_id: str | None
    api_key_id: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(
    store: Store,
    kind: str,
    *,
    user_id: str | None = None,
    tenant_id: str | None = None,
    api_key_id: str | None = None,
) -> dict:
    """Store a new token and return the OAuth token response for it."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(timezone.utc) + timedelta(seconds=TOKEN_LIFETIME)
    store.db["mp_tokens"].insert(
        {
            "id": new_id(),
            "token_hash": hash_token(token),
            "kind": kind,
            "user_id": user_id,
            "tenant_id": tenant_id,
            "api_key_id": api_key_id,
            "created": utcnow(),
            "expires": expires.isoformat(timespec="microseconds"),
        }
    )
    _prune(store)
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": TOKEN_LIFETIME,
    }


def verify(store: Store, token: str) -> TokenHolder:
    """Return who ``token`` stands for.

    Raises:
        ApiError: 401 for an unknown or expired token, a deactivated user or
            a token whose API key was revoked, expired or deleted.
    """
    row = store.query_one(
        "SELECT * FROM mp_tokens WHERE token_hash = ?", [hash_token(token)]
    )
    if row is None:
        raise unauthorized("invalid token: it is not known")
    if datetime.fromisoformat(row["expires"]) <= datetime.now(timezone.utc):
        raise unauthorized("token expired: log in again")
    if row["kind"] == "tenant":
        return TokenHolder("tenant", None, row["tenant_id"], None)

    user = store.query_one("SELECT * FROM users WHERE id = ?", [row["user_id"]])
    if user is None or not user["is_active"]:
        raise unauthorized("user deactivated: ask an administrator")
    if row["api_key_id"] and not api_key_valid(store, row["api_key_id"]):
        raise unauthorized("the API key this token came from was revoked or expired")
    return TokenHolder("user", user, None, row["api_key_id"])


def api_key_valid(store: Store, key_id: str) -> bool:
    """Return whether the API key exists and is neither revoked nor expired."""
    row = store.query_one(
        "SELECT revoked, expires FROM api_keys WHERE id = ?", [key_id]
    )
    if row is None or row["revoked"]:
        return False
    if row["expires"] is None:
        return True
    return datetime.fromisoformat(row["expires"]) > datetime.now(timezone.utc)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def _prune(store: Store) -> None:
    """Delete tokens that expired more than a day ago."""
    cutoff = datetime.now(timezone.utc) - timedelta(days=1)
    store.db.execute(
        "DELETE FROM mp_tokens WHERE expires < ?",
        [cutoff.isoformat(timespec="microseconds")],
    )
