"""Sessions that must end when a password changes or a user is deactivated.

A password change must leave no session that the old password opened,
except the one that made the change.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import sqlite3
from http.cookies import SimpleCookie

from tests.core.helpers import (
    add_member,
    assign_role,
    create_organization,
    create_tenant,
)
from zenpro_local.api.sessions import COOKIE_NAME, CSRF_HEADER

OLD_PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "new-horse-battery"
# OpenSSL's scrypt runs its p lanes one after another, so a stored hash with a larger
# p makes verifying the old password last far longer than hashing the new
# one, at the same 16 MiB of memory.
SLOW_P = 24


def _slow_hash(password: str) -> str:
    """Return a valid scrypt hash of ``password`` that is slow to verify."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=2**14,
        r=8,
        p=SLOW_P,
        maxmem=64 * 1024 * 1024,
        dklen=32,
    )
    encoded_salt = base64.b64encode(salt).decode()
    encoded_digest = base64.b64encode(digest).decode()
    return f"scrypt${2**14}$8${SLOW_P}${encoded_salt}${encoded_digest}"


def _cookie(token: str) -> dict:
    return {"Cookie": f"{COOKIE_NAME}={token}"}


async def _create_user(daemon, username: str) -> str:
    response = await daemon.call(
        "POST",
        "/api/v1/users",
        json={"username": username, "password": OLD_PASSWORD},
    )
    assert response.status == 201, response.body
    return response.body["id"]


async def _sign_in(daemon, username: str, password: str):
    return await daemon.call(
        "POST",
        "/api/v1/session",
        token=None,
        json={"username": username, "password": password},
    )


def _session_token(response) -> str:
    return SimpleCookie(response.headers["Set-Cookie"])[COOKIE_NAME].value


async def test_sign_in_racing_password_reset(daemon):
    user_id = await _create_user(daemon, "ada")
    with contextlib.closing(sqlite3.connect(daemon.data_dir / "state.db")) as db:
        with db:
            db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?",
                [_slow_hash(OLD_PASSWORD), user_id],
            )

    # The sign-in reads the old hash at once, then verifies it in a thread
    # for much longer than the reset takes to hash the new password.
    sign_in = asyncio.create_task(_sign_in(daemon, "ada", OLD_PASSWORD))
    reset = await daemon.call(
        "PATCH", f"/api/v1/users/{user_id}", json={"password": NEW_PASSWORD}
    )
    signed_in = await sign_in
    assert reset.status == 200, reset.body
    assert signed_in.status in (201, 401), signed_in.body

    if signed_in.status == 201:
        session = await daemon.call(
            "GET",
            "/api/v1/session",
            token=None,
            headers=_cookie(_session_token(signed_in)),
        )
        # The old password opened this session, and the reset came first.
        assert session.status == 401, session.body


async def test_reactivation_revives_no_session(daemon):
    user_id = await _create_user(daemon, "ada")
    signed_in = await _sign_in(daemon, "ada", OLD_PASSWORD)
    assert signed_in.status == 201, signed_in.body
    token = _session_token(signed_in)

    deactivated = await daemon.call(
        "PATCH", f"/api/v1/users/{user_id}", json={"is_active": False}
    )
    while_inactive = await daemon.call(
        "GET", "/api/v1/session", token=None, headers=_cookie(token)
    )
    reactivated = await daemon.call(
        "PATCH", f"/api/v1/users/{user_id}", json={"is_active": True}
    )
    after = await daemon.call(
        "GET", "/api/v1/session", token=None, headers=_cookie(token)
    )

    assert deactivated.status == 200, deactivated.body
    assert while_inactive.status == 401, while_inactive.body
    assert reactivated.status == 200, reactivated.body
    # The documented contract: a session ends when its user is deactivated.
    assert after.status == 401, after.body


async def test_own_password_change_needs_old_password(daemon):
    user_id = await _create_user(daemon, "ada")
    owner = await _sign_in(daemon, "ada", OLD_PASSWORD)
    thief = await _sign_in(daemon, "ada", OLD_PASSWORD)
    assert owner.status == 201, owner.body
    assert thief.status == 201, thief.body

    # A client with a copied session cookie sets a new password without
    # knowing the current one, keeps its session and ends the owner's.
    changed = await daemon.call(
        "PATCH",
        f"/api/v1/users/{user_id}",
        token=None,
        json={"password": NEW_PASSWORD},
        headers={
            **_cookie(_session_token(thief)),
            CSRF_HEADER: thief.body["csrf_token"],
        },
    )

    assert changed.status in (400, 403, 422), changed.body


async def test_bearer_request_keeps_no_cookie_session(daemon):
    user_id = await _create_user(daemon, "ada")
    signed_in = await _sign_in(daemon, "ada", OLD_PASSWORD)
    assert signed_in.status == 201, signed_in.body
    token = _session_token(signed_in)

    # The administrator's API key authenticates this reset. The cookie
    # authenticates nothing, so it must not decide which session survives.
    reset = await daemon.call(
        "PATCH",
        f"/api/v1/users/{user_id}",
        json={"password": NEW_PASSWORD},
        headers=_cookie(token),
    )
    session = await daemon.call(
        "GET", "/api/v1/session", token=None, headers=_cookie(token)
    )

    assert reset.status == 200, reset.body
    assert session.status == 401, session.body


async def test_password_reset_ends_device_login(daemon):
    user_id = await _create_user(daemon, "ada")
    organization_id = await create_organization(daemon, "acme")
    tenant_id = await create_tenant(daemon, organization_id, "t1")
    await add_member(daemon, organization_id, user_id)
    await assign_role(
        daemon, organization_id, "tenant-viewer", user_id=user_id, tenant_id=tenant_id
    )
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    # The zenml CLI signs in through the device flow with the old password.
    started = await daemon.call("POST", "/mp/auth/device_authorization", token=None)
    approved = await daemon.call(
        "POST",
        "/mp/device",
        token=None,
        data=(
            f"user_code={started.body['user_code']}&tenant={tenant_id}"
            f"&username=ada&password={OLD_PASSWORD}"
        ),
        headers=form,
    )
    login = await daemon.call(
        "POST",
        "/mp/auth/login",
        token=None,
        data=(
            "grant_type=urn:ietf:params:oauth:grant-type:device_code"
            f"&device_code={started.body['device_code']}"
        ),
        headers=form,
    )
    assert started.status == 200, started.body
    assert approved.status == 200, approved.body
    assert login.status == 200, login.body

    reset = await daemon.call(
        "PATCH", f"/api/v1/users/{user_id}", json={"password": NEW_PASSWORD}
    )
    authorized = await daemon.call(
        "GET",
        f"/mp/users/authorize_server?server_id={tenant_id}",
        token=login.body["access_token"],
    )

    assert reset.status == 200, reset.body
    assert authorized.status == 401, authorized.body
