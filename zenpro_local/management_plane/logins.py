"""The credential of each user's latest sign-in to each tenant.

A tenant server keeps its own session token for up to an hour after a
login through the management plane, and only passes the user id to
permission checks. Recording the API key behind the latest login lets
:mod:`rbac` refuse a session whose key was revoked since, on its next
request. A user who signs in again with another credential replaces the
record.
"""

from __future__ import annotations

from zenpro_local.management_plane import tokens
from zenpro_local.store import Store, utcnow


def record(store: Store, tenant_id: str, user_id: str, api_key_id: str | None) -> None:
    """Remember the credential of a login; write only when it changed."""
    current = store.query_one(
        "SELECT api_key_id FROM tenant_logins WHERE tenant_id = ? AND user_id = ?",
        [tenant_id, user_id],
    )
    if current is not None and current["api_key_id"] == api_key_id:
        return
    store.db["tenant_logins"].upsert(
        {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "api_key_id": api_key_id,
            "updated": utcnow(),
        },
        pk=("tenant_id", "user_id"),
    )


def session_valid(store: Store, tenant_id: str, user_id: str) -> bool:
    """Return False when the user's latest login used a key now revoked."""
    row = store.query_one(
        "SELECT api_key_id FROM tenant_logins WHERE tenant_id = ? AND user_id = ?",
        [tenant_id, user_id],
    )
    if row is None or row["api_key_id"] is None:
        return True
    return tokens.api_key_valid(store, row["api_key_id"])
