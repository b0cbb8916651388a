"""API keys: shown once, stored as a hash, revocable, expiring; the first-start key."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from datetime import datetime, timedelta, timezone

from tests.core.helpers import assert_error, create_user, running_daemon
from zenpro_local import bootstrap
from zenpro_local.store import Store


async def _create_key(daemon, token="admin", **body) -> dict:
    response = await daemon.call(
        "POST", "/api/v1/users/me/api_keys", token=token, json=body
    )
    assert response.status == 201, response.body
    return response.body


def _write_state(daemon, sql: str, params: list) -> None:
    with contextlib.closing(sqlite3.connect(daemon.data_dir / "state.db")) as db:
        with db:
            db.execute(sql, params)


def _state_files(daemon) -> bytes:
    """Return the bytes of the state DB with its WAL and shared-memory files."""
    content = b""
    for path in sorted(daemon.data_dir.glob("state.db*")):
        content += path.read_bytes()
    return content


async def test_created_key_authenticates(daemon):
    created = await _create_key(daemon, note="ci runner")
    assert created["key"].startswith("ZENPROKEY_")
    assert created["note"] == "ci runner"
    assert created["expires"] is None
    assert created["revoked"] is None

    me = await daemon.call("GET", "/api/v1/users/me", token=created["key"])
    assert me.status == 200
    assert me.body["username"] == "admin"


async def test_keys_differ_each_time(daemon):
    first = await _create_key(daemon)
    second = await _create_key(daemon)
    assert first["key"] != second["key"]
    assert first["id"] != second["id"]


async def test_listed_keys_omit_key(daemon):
    created = await _create_key(daemon, note="listed")
    response = await daemon.call("GET", "/api/v1/users/me/api_keys")
    assert response.status == 200
    listed = {item["id"]: item for item in response.body["items"]}
    assert response.body["total"] == len(listed) == 2
    assert set(listed[created["id"]]) == {
        "id",
        "user_id",
        "note",
        "created",
        "expires",
        "last_used",
        "revoked",
    }
    assert listed[created["id"]]["note"] == "listed"
    assert created["key"] not in str(response.body)


async def test_key_stored_only_as_hash(daemon):
    created = await _create_key(daemon, note="secret")
    used = await daemon.call("GET", "/api/v1/users/me", token=created["key"])
    assert used.status == 200

    content = _state_files(daemon)
    assert created["id"].encode() in content
    # ZENPROKEY_<id>_<secret>, and the secret itself may contain "_".
    secret = created["key"].split("_", 2)[2]
    assert len(secret) == 43
    assert created["key"].encode() not in content
    assert secret.encode() not in content
    assert daemon.admin_token.encode() not in content


async def test_revoked_key_rejected(daemon):
    created = await _create_key(daemon)
    revoked = await daemon.call("DELETE", f"/api/v1/users/me/api_keys/{created['id']}")
    assert revoked.status == 204
    assert revoked.body is None

    response = await daemon.call("GET", "/api/v1/users/me", token=created["key"])
    error = assert_error(response, 401, field=None)
    assert "revoked" in error["message"]
    assert created["key"] not in error["message"]

    listed = await daemon.call("GET", "/api/v1/users/me/api_keys")
    by_id = {item["id"]: item for item in listed.body["items"]}
    assert by_id[created["id"]]["revoked"] is not None

    again = await daemon.call("DELETE", f"/api/v1/users/me/api_keys/{created['id']}")
    assert again.status == 204


async def test_expired_key_rejected(daemon):
    created = await _create_key(daemon, expires_in_days=1)
    expires = datetime.fromisoformat(created["expires"])
    assert (
        timedelta(hours=23) < expires - datetime.now(timezone.utc) <= timedelta(days=1)
    )
    assert (
        await daemon.call("GET", "/api/v1/users/me", token=created["key"])
    ).status == 200

    # The API sets expiry in whole days only, so rewriting the stored expiry
    # is the only way to get an expired key without waiting a day.
    past = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    _write_state(
        daemon, "UPDATE api_keys SET expires = ? WHERE id = ?", [past, created["id"]]
    )

    response = await daemon.call("GET", "/api/v1/users/me", token=created["key"])
    error = assert_error(response, 401, field=None)
    assert "expired" in error["message"]


async def test_malformed_keys_rejected(daemon):
    key = daemon.admin_token
    key_id = key.split("_")[1]
    candidates = [
        key[:-1],
        key[:20],
        key + "x",
        key.replace("ZENPROKEY_", "zenprokey_"),
        "ZENPROKEY_",
        f"ZENPROKEY_{key_id}_" + "A" * 43,
        f"ZENPROKEY_{'0' * 16}_" + "A" * 43,
        key.lower(),
        "null",
    ]
    for candidate in candidates:
        response = await daemon.call("GET", "/api/v1/users/me", token=candidate)
        error = assert_error(response, 401, field=None)
        assert candidate not in error["message"]
        assert response.headers["WWW-Authenticate"] == "Bearer"

    for header in ("Bearer", "Bearer ", f"Token {key}", key, f"Basic {key}"):
        response = await daemon.call(
            "GET", "/api/v1/users/me", token=None, headers={"Authorization": header}
        )
        assert_error(response, 401, field=None)


async def test_last_used_recorded(daemon):
    created = await _create_key(daemon)
    assert created["last_used"] is None
    before = datetime.now(timezone.utc)

    used = await daemon.call("GET", "/api/v1/organizations", token=created["key"])
    assert used.status == 200

    listed = await daemon.call("GET", "/api/v1/users/me/api_keys")
    by_id = {item["id"]: item for item in listed.body["items"]}
    last_used = by_id[created["id"]]["last_used"]
    assert last_used is not None
    assert datetime.fromisoformat(last_used) >= before


async def test_deactivated_user_key_rejected(daemon):
    user = await create_user(daemon, "bob")
    assert (
        await daemon.call("GET", "/api/v1/users/me", token=user.token)
    ).status == 200

    deactivated = await daemon.call(
        "PATCH", f"/api/v1/users/{user.id}", json={"is_active": False}
    )
    assert deactivated.status == 200, deactivated.body
    response = await daemon.call("GET", "/api/v1/users/me", token=user.token)
    assert_error(response, 401, field=None)


async def test_other_users_keys_need_superuser(daemon):
    alice = await create_user(daemon, "alice")
    bob = await create_user(daemon, "bob")
    path = f"/api/v1/users/{bob.id}/api_keys"
    # Alice and Bob share no organization, so Bob's id is not visible to Alice.
    assert_error(await daemon.call("GET", path, token=alice.token), 404)
    assert_error(await daemon.call("POST", path, token=alice.token, json={}), 404)

    own = await daemon.call("GET", "/api/v1/users/me/api_keys", token=alice.token)
    assert own.status == 200
    assert own.body["total"] == 1


# First start


async def test_first_start_writes_private_token(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    data_dir = tmp_path / "data"
    async with running_daemon(data_dir) as daemon:
        token_path = data_dir / "admin-token"
        assert stat.S_IMODE(os.stat(token_path).st_mode) == 0o600
        assert token_path.read_text() == daemon.admin_token + "\n"
        me = await daemon.call("GET", "/api/v1/users/me")
        assert me.body["username"] == "admin"
        assert me.body["is_superuser"] is True

    messages = [record.getMessage() for record in caplog.records]
    assert any(str(token_path) in message for message in messages), messages
    assert not any(daemon.admin_token in message for message in messages)


async def test_restart_keeps_admin_and_token(tmp_path):
    data_dir = tmp_path / "data"
    async with running_daemon(data_dir) as daemon:
        first_token = daemon.admin_token

    async with running_daemon(data_dir) as daemon:
        assert daemon.admin_token == first_token
        users = await daemon.call("GET", "/api/v1/users")
        assert users.body["total"] == 1
        keys = await daemon.call("GET", "/api/v1/users/me/api_keys")
        assert keys.body["total"] == 1


async def test_restart_does_not_recreate_token(tmp_path):
    data_dir = tmp_path / "data"
    async with running_daemon(data_dir):
        pass
    (data_dir / "admin-token").unlink()

    store = Store.open(data_dir / "state.db")
    try:
        bootstrap.ensure_admin(store, data_dir)
        users = store.query_one("SELECT count(*) AS n FROM users")["n"]
        keys = store.query_one("SELECT count(*) AS n FROM api_keys")["n"]
    finally:
        store.close()
    assert not (data_dir / "admin-token").exists()
    assert users == 1
    assert keys == 1
