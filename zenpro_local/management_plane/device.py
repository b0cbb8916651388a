"""Device authorization: the page where a person approves a ``zenml login``.

The CLI asks ``POST /mp/auth/device_authorization`` for a device code and
opens ``/mp/device?user_code=...`` in a browser. There the person signs in
with the daemon's username and password and picks the tenant; the CLI's
next poll of the token endpoint then gets a user token and that tenant's id.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import secrets
from datetime import datetime, timedelta, timezone

from aiohttp import web

from zenpro_local import credentials
from zenpro_local.api.access import can_see_tenant
from zenpro_local.api.context import context
from zenpro_local.api.ratelimit import AUTH_LIMITER, client_address
from zenpro_local.management_plane.routing import route
from zenpro_local.authz import load_principal
from zenpro_local.management_plane import PREFIX, urls
from zenpro_local.management_plane.pages import html_page
from zenpro_local.store import Store, new_id, utcnow

logger = logging.getLogger(__name__)

TAG = "management plane"
# Seconds a device code stays valid, and between two polls of the CLI.
DEVICE_CODE_LIFETIME = 600
POLL_INTERVAL = 2
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def find_by_device_code(store: Store, code: str) -> dict | None:
    return store.query_one(
        "SELECT * FROM device_authorizations WHERE device_code_hash = ?", [_hash(code)]
    )


def _new_user_code() -> str:
    letters = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
    return f"{letters[:4]}-{letters[4:]}"


@route(
    "POST",
    PREFIX + "/auth/device_authorization",
    summary="Start a device authorization for the zenml CLI",
    tag=TAG,
    public=True,
)
async def authorize_device(request: web.Request) -> web.Response:
    store = context(request).store
    device_code = secrets.token_urlsafe(32)
    user_code = _new_user_code()
    expires = datetime.now(timezone.utc) + timedelta(seconds=DEVICE_CODE_LIFETIME)
    store.db["device_authorizations"].insert(
        {
            "id": new_id(),
            "device_code_hash": _hash(device_code),
            "user_code": user_code,
            "status": "pending",
            "user_id": None,
            "tenant_id": None,
            "created": utcnow(),
            "expires": expires.isoformat(timespec="microseconds"),
        }
    )
    # Codes older than a day are of no use to anyone; drop them.
    cutoff = datetime.now(timezone.utc) - timedelta(days=1)
    store.db.execute(
        "DELETE FROM device_authorizations WHERE expires < ?",
        [cutoff.isoformat(timespec="microseconds")],
    )
    page = urls.api_url(context(request).settings) + "/device"
    return web.json_response(
        {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": page,
            "verification_uri_complete": f"{page}?user_code={user_code}",
            "expires_in": DEVICE_CODE_LIFETIME,
            "interval": POLL_INTERVAL,
        }
    )


@route(
    "GET",
    PREFIX + "/device",
    summary="The sign-in page that approves a device code",
    tag=TAG,
    public=True,
    content_type="text/html",
)
async def device_page(request: web.Request) -> web.Response:
    user_code = request.query.get("user_code", "")
    tenant = request.query.get("workspace", "")
    return _page(user_code, tenant, "")


@route(
    "POST",
    PREFIX + "/device",
    summary="Sign in and approve a device code for one tenant",
    tag=TAG,
    public=True,
    content_type="text/html",
)
async def approve_device(request: web.Request) -> web.Response:
    form = await request.post()
    user_code = str(form.get("user_code", "")).strip().upper()
    tenant_ref = str(form.get("tenant", "")).strip()
    store = context(request).store

    row = store.query_one(
        "SELECT * FROM device_authorizations WHERE user_code = ?", [user_code]
    )
    expired = row is not None and (
        datetime.fromisoformat(row["expires"]) <= datetime.now(timezone.utc)
    )
    if row is None or expired or row["status"] != "pending":
        return _page(user_code, tenant_ref, "This code is unknown, used or expired: "
                     "run 'zenml login' again.", status=400)

    # Passwords are chosen by people, so failures count against the same
    # per-address limit as the admin API's. NOTE: behind Caddy every
    # browser has Caddy's address, so the limit is shared by all of them
    # unless auth.trusted_proxies lists Caddy's address.
    limiter = request.app[AUTH_LIMITER]
    address = client_address(request)
    limiter.check(address)
    user = store.query_one(
        "SELECT * FROM users WHERE username = ?", [str(form.get("username", ""))]
    )
    password = str(form.get("password", ""))
    # scrypt takes tens of milliseconds, so it runs off the event loop, and
    # it runs for unknown usernames too, so timing does not reveal them.
    stored = user["password_hash"] if user else None
    matches = await asyncio.to_thread(
        credentials.verify_password,
        password,
        stored or credentials.decoy_password_hash(),
    )
    if not (matches and stored):
        limiter.record_failure(address)
        logger.info("Device approval with a wrong password from %s", address)
        return _page(user_code, tenant_ref, "Wrong username or password.", status=401)
    if not user["is_active"]:
        return _page(user_code, tenant_ref, "This user is deactivated.", status=403)

    tenant = store.query_one(
        "SELECT * FROM tenants WHERE (id = ? OR name = ?) AND deleted IS NULL",
        [tenant_ref, tenant_ref],
    )
    if tenant is None or not can_see_tenant(load_principal(store, user), tenant):
        return _page(user_code, tenant_ref, f"No tenant {tenant_ref!r} that you may use.",
                     status=404)

    store.db["device_authorizations"].update(
        row["id"], {"status": "approved", "user_id": user["id"], "tenant_id": tenant["id"]}
    )
    logger.info(
        "Device authorization %s approved by user %s for tenant %s",
        row["id"], user["id"], tenant["id"],
    )
    return web.Response(
        text=html_page(
            "Device approved",
            f"<p>The <code>zenml</code> CLI is now signed in to tenant "
            f"<b>{html.escape(tenant['name'])}</b>. You can close this page.</p>",
        ),
        content_type="text/html",
    )


def _page(user_code: str, tenant: str, error: str, status: int = 200) -> web.Response:
    message = f'<p class="error">{html.escape(error)}</p>' if error else ""
    body = f"""{message}
<form method="post">
  <label>Code <input name="user_code" value="{html.escape(user_code)}"></label>
  <label>Username <input name="username" autocomplete="username"></label>
  <label>Password <input name="password" type="password"
    autocomplete="current-password"></label>
  <label>Tenant (name or id) <input name="tenant" value="{html.escape(tenant)}">
  </label>
  <button type="submit">Approve</button>
</form>"""
    return web.Response(
        text=html_page("Sign in to approve zenml login", body),
        status=status,
        content_type="text/html",
    )
