"""No API key, password, session token or tenant secret reaches the log.

Each test drives the daemon through many calls with logging captured at
DEBUG for every logger (aiohttp's access log included), then searches
every captured line, traceback and extra field for each secret it used.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tests.core.helpers import (
    add_member,
    create_organization,
    create_tenant,
    create_user,
    running_daemon,
)
from zenpro_local.api.routing import OPERATIONS
from zenpro_local.secretbox import SecretBox


def random_part(key: str) -> str:
    """Return the secret part of ``ZENPROKEY_<16 hex digits>_<secret>``."""
    return key[len("ZENPROKEY_") + 17 :]


class Secrets:
    """The secrets a test used, and the check that none was logged."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, label: str, value: str) -> str:
        self.values[label] = value
        # The random part of an API key is the secret; the id is not. It may
        # contain "_" itself, so it is cut off after the id, not at a "_".
        if value.startswith("ZENPROKEY_"):
            self.values[label + " (random part)"] = random_part(value)
        return value

    def assert_not_logged(self, records: list[logging.LogRecord], text: str) -> None:
        dumped = [text]
        for record in records:
            dumped.append(record.getMessage())
            dumped.append(record.exc_text or "")
            dumped.append(json.dumps(vars(record), default=str))
        everything = "\n".join(dumped)
        for label, value in self.values.items():
            assert value not in everything, f"the log contains {label}"


async def _api_key_calls(daemon, secrets: Secrets) -> None:
    secrets.add("admin API key", daemon.admin_token)
    password = secrets.add("password at creation", "correct horse battery staple")
    created = await daemon.call(
        "POST",
        "/api/v1/users",
        json={"username": "alice", "password": password, "email": "a@example.com"},
    )
    assert created.status == 201, created.body
    alice_id = created.body["id"]
    key = await daemon.call("POST", f"/api/v1/users/{alice_id}/api_keys", json={})
    alice = secrets.add("alice's API key", key.body["key"])

    changed = secrets.add("password set by admin", "tr0ub4dor and 3")
    response = await daemon.call(
        "PATCH", f"/api/v1/users/{alice_id}", json={"password": changed}
    )
    assert response.status == 200, response.body
    own = secrets.add("password set by alice", "new password of alice")
    response = await daemon.call(
        "PATCH",
        "/api/v1/users/me",
        token=alice,
        json={"password": own, "current_password": changed},
    )
    assert response.status == 200, response.body

    second = await daemon.call(
        "POST", "/api/v1/users/me/api_keys", token=alice, json={}
    )
    revoked = secrets.add("revoked API key", second.body["key"])
    await daemon.call(
        "DELETE", f"/api/v1/users/me/api_keys/{second.body['id']}", token=alice
    )
    assert (await daemon.call("GET", "/api/v1/users/me", token=revoked)).status == 401

    organization_id = await create_organization(daemon, "acme")
    await add_member(daemon, organization_id, alice_id, "organization-admin")
    tenant_id = await create_tenant(daemon, organization_id, "t1", token=alice)
    for method, path, body in (
        ("GET", "/api/v1/tenants", None),
        ("PATCH", f"/api/v1/tenants/{tenant_id}", {"description": "x"}),
        ("GET", f"/api/v1/tenants/{tenant_id}/events", None),
        ("POST", f"/api/v1/organizations/{organization_id}/teams", {"name": "crew"}),
        ("DELETE", f"/api/v1/tenants/{tenant_id}", None),
    ):
        response = await daemon.call(method, path, token=alice, json=body)
        assert response.status < 300, response.body

    # Credentials in the wrong places and bad keys of every kind, up to 429.
    await daemon.call("GET", f"/api/v1/users?api_key={alice}", token=None)
    await daemon.call("GET", f"/api/v1/users?token={alice}", token=alice)
    wrong_secret = secrets.add("key with a wrong secret", alice[:-4] + "AAAA")
    for bad in (wrong_secret, alice[:-5], alice + "x", f"{alice} {alice}"):
        await daemon.call("GET", "/api/v1/users/me", token=bad)
    for _ in range(12):
        await daemon.call("GET", "/api/v1/users/me", token=wrong_secret)

    await _oversized_authorization(daemon, alice)


async def _oversized_authorization(daemon, key: str) -> None:
    """Send ``key`` in an Authorization header over aiohttp's 8190 bytes."""
    host, port = daemon.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    head = f"GET /api/v1/users HTTP/1.1\r\nAuthorization: Bearer {key}{'x' * 9000}"
    writer.write((head + "\r\n\r\n").encode())
    await writer.drain()
    await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    await writer.wait_closed()


def _tenant_secrets(data_dir) -> dict[str, str]:
    """Return the decrypted secrets of every tenant in the state database."""
    import sqlite3

    box = SecretBox.load_or_create(data_dir / "secret.key")
    with sqlite3.connect(data_dir / "state.db") as connection:
        sealed = [row[0] for row in connection.execute("SELECT secrets FROM tenants")]
    found = {}
    for number, token in enumerate(sealed):
        for name, value in box.open(token).items():
            found[f"tenant {number} {name}"] = value
    return found


async def test_api_key_and_password_calls_log_no_secret(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = Secrets()
    async with running_daemon(tmp_path / "data") as daemon:
        await _api_key_calls(daemon, secrets)
        for label, value in _tenant_secrets(daemon.data_dir).items():
            secrets.add(label, value)

    secrets.assert_not_logged(caplog.records, caplog.text)


def _has_route(method: str, path: str) -> bool:
    return any(op.method == method and op.path == path for op in OPERATIONS)


@pytest.mark.skipif(
    not _has_route("POST", "/api/v1/session"), reason="no dashboard sign-in route"
)
async def test_sign_in_calls_log_no_secret(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = Secrets()
    async with running_daemon(tmp_path / "data") as daemon:
        user = await create_user(daemon, "bob")
        secrets.add("bob's API key", user.token)
        password = secrets.add("bob's password", "bob's long password")
        await daemon.call(
            "PATCH", f"/api/v1/users/{user.id}", json={"password": password}
        )

        signed_in = []
        for number, body in enumerate(
            [{"username": "bob", "password": password}, {"api_key": user.token}]
        ):
            response = await daemon.call(
                "POST", "/api/v1/session", token=None, json=body
            )
            assert response.status == 201, response.body
            cookie = response.headers["Set-Cookie"].split(";")[0]
            secrets.add(f"session token {number}", cookie.partition("=")[2])
            secrets.add(f"CSRF token {number}", response.body["csrf_token"])
            signed_in.append(cookie)

        wrong = secrets.add("wrong password", "not bob's password at all")
        for _ in range(12):
            await daemon.call(
                "POST",
                "/api/v1/session",
                token=None,
                json={"username": "bob", "password": wrong},
            )
        for cookie in signed_in:
            await daemon.call(
                "GET", "/api/v1/users/me", token=None, headers={"Cookie": cookie}
            )
        await daemon.call(
            "GET", "/api/v1/users/me", token=None, headers={"Cookie": cookie + "x"}
        )
        await daemon.call("GET", f"/api/v1/users?session={cookie}", token=None)

    secrets.assert_not_logged(caplog.records, caplog.text)
