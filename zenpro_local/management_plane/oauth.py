"""The OAuth token endpoint and device authorization (RFC 8628).

``POST /mp/auth/login`` accepts three grants:

- ``client_credentials``: a tenant server, with its id as client id and the
  client secret the daemon generated for it;
- the device code grant: the ``zenml`` CLI polling after ``zenml login``
  opened the daemon's sign-in page;
- a daemon API key (``ZENPROKEY_...``) as ``password`` or bearer token:
  ``zenml login <tenant url> --api-key``.

Errors follow RFC 6749: status 400 or 401 and ``{"error", "error_description"}``.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, timezone

from aiohttp import web

from zenpro_local.api.auth import authenticate_api_key
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError
from zenpro_local.management_plane.routing import route
from zenpro_local.management_plane import PREFIX, device, tokens

logger = logging.getLogger(__name__)

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TAG = "management plane"


def oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description}, status=status
    )


@route(
    "POST",
    PREFIX + "/auth/login",
    summary="Issue a management-plane token (client credentials, device code "
    "or API key)",
    tag=TAG,
    public=True,
    errors=(400, 401),
)
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    grant_type = form.get("grant_type", "")
    if grant_type == "client_credentials":
        return _client_credentials(request, form)
    if grant_type == DEVICE_CODE_GRANT:
        return _device_code(request, form)
    return _api_key(request, form)


def _client_credentials(request: web.Request, form) -> web.Response:
    store = context(request).store
    client_id = str(form.get("client_id", ""))
    secret = str(form.get("client_secret", ""))
    row = store.query_one(
        "SELECT id, name, client_secret_hash, deleted FROM tenants WHERE id = ?",
        [client_id],
    )
    if row is None or row["deleted"] or not row["client_secret_hash"]:
        logger.warning("Client credentials login for unknown tenant %s", client_id)
        return oauth_error(401, "invalid_client", "unknown client id")
    if not hmac.compare_digest(tokens.hash_token(secret), row["client_secret_hash"]):
        logger.warning("Wrong client secret for tenant %s", client_id)
        return oauth_error(401, "invalid_client", "wrong client secret")
    logger.info("Tenant %s (%s) logged in to the management plane", row["id"], row["name"])
    return web.json_response(tokens.issue(store, "tenant", tenant_id=row["id"]))


def _device_code(request: web.Request, form) -> web.Response:
    store = context(request).store
    code = str(form.get("device_code", ""))
    row = device.find_by_device_code(store, code)
    if row is None:
        return oauth_error(400, "invalid_grant", "unknown device code")
    if datetime.fromisoformat(row["expires"]) <= datetime.now(timezone.utc):
        return oauth_error(400, "expired_token", "the device code expired")
    if row["status"] == "pending":
        return oauth_error(400, "authorization_pending", "not approved yet")
    if row["status"] != "approved":
        return oauth_error(400, "access_denied", f"the device code is {row['status']}")

    store.db["device_authorizations"].update(row["id"], {"status": "used"})
    response = tokens.issue(store, "user", user_id=row["user_id"])
    response["device_metadata"] = {"tenant_id": row["tenant_id"]}
    logger.info("Device authorization %s used by user %s", row["id"], row["user_id"])
    return web.json_response(response)


def _api_key(request: web.Request, form) -> web.Response:
    key = str(form.get("password", ""))
    if not key:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        key = value.strip() if scheme.lower() == "bearer" else ""
    if not key:
        return oauth_error(
            400, "invalid_request", "send an API key as 'password' or a grant_type"
        )
    store = context(request).store
    try:
        principal = authenticate_api_key(store, key)
    except ApiError as error:
        return oauth_error(401, "invalid_grant", error.message)
    response = tokens.issue(
        store, "user", user_id=principal.user_id, api_key_id=principal.api_key_id
    )
    return web.json_response(response)
