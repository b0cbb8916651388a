"""The caller of a management-plane endpoint, read from its bearer token."""

from __future__ import annotations

import time

from aiohttp import web

from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError
from zenpro_local.management_plane import tokens

# Seconds a verified tenant token is trusted without reading the database.
# A token may thus be honoured up to this long past its expiry, but tenant
# servers log in again 5 minutes before expiry.
_TENANT_CACHE_SECONDS = 60.0


def bearer_token(request: web.Request) -> str:
    """Return the bearer token of ``request``.

    Raises:
        ApiError: 401 when the header is missing or not a bearer token.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise tokens.unauthorized(
            "missing credentials: send 'Authorization: Bearer <token>'"
        )
    return token.strip()


def tenant_caller(request: web.Request) -> dict:
    """Return the tenant row of a tenant server calling with its own token.

    Raises:
        ApiError: 401 for a missing or invalid token, 403 for a user's token.
    """
    store = context(request).store
    token = bearer_token(request)

    # Tenant servers send their token with every permission check, so the
    # verified tenant row is cached until the state changes or it expires.
    key = ("mp_tenant_token", token)
    cached = store.cache.get(key)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]

    holder = tokens.verify(store, token)
    if holder.kind != "tenant":
        raise ApiError(403, "this endpoint is for tenant servers only")
    row = store.query_one("SELECT * FROM tenants WHERE id = ?", [holder.tenant_id])
    if row is None or row["deleted"]:
        raise tokens.unauthorized("the tenant of this token was deleted")
    store.cache.put(key, (row, time.monotonic() + _TENANT_CACHE_SECONDS))
    return row


def user_caller(request: web.Request) -> tokens.TokenHolder:
    """Return the user a management-plane token or daemon API key stands for.

    Raises:
        ApiError: 401 for missing or invalid credentials, 403 for a tenant's
            token.
    """
    from zenpro_local.api.auth import authenticate_api_key
    from zenpro_local.credentials import API_KEY_PREFIX

    store = context(request).store
    token = bearer_token(request)
    if token.startswith(API_KEY_PREFIX):
        principal = authenticate_api_key(store, token)
        user = store.query_one("SELECT * FROM users WHERE id = ?", [principal.user_id])
        return tokens.TokenHolder("user", user, None, principal.api_key_id)
    holder = tokens.verify(store, token)
    if holder.kind != "user":
        raise ApiError(403, "this endpoint is for users only")
    return holder
