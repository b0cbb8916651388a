"""Cached responses of /mp/rbac/check_permissions after access is removed.

Each test warms the cache with an allowed check, takes the access away
through the admin API, the management plane or a second SQLite connection,
and sends the same bytes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid

import pytest

from tests.core.helpers import (
    add_member,
    assign_role,
    create_organization,
    create_team,
    create_tenant,
    create_user,
    tenant_server_token,
)

STACK = f"stack/{uuid.uuid4()}"
BODY = json.dumps([STACK]).encode()


@pytest.fixture
async def plane(daemon):
    """A tenant, its token, and a user who may read through a team's role."""
    organization_id = await create_organization(daemon, "acme")
    tenant_id = await create_tenant(daemon, organization_id, "t1")
    token = await tenant_server_token(daemon, tenant_id)

    user = await create_user(daemon, "vera")
    await add_member(daemon, organization_id, user.id)
    team_id = await create_team(daemon, organization_id, "readers")

    joined = await daemon.call(
        "POST", f"/api/v1/teams/{team_id}/members", json={"user_id": user.id}
    )
    assert joined.status == 204, joined.body
    await assign_role(
        daemon,
        organization_id,
        "tenant-viewer",
        team_id=team_id,
        tenant_id=tenant_id,
    )

    return {
        "daemon": daemon,
        "token": token,
        "user": user,
        "team_id": team_id,
        "tenant_id": tenant_id,
    }


def _write(daemon, sql: str, params) -> None:
    """Commit one statement through a connection other than the daemon's."""
    with contextlib.closing(sqlite3.connect(daemon.data_dir / "state.db")) as db:
        with db:
            db.execute(sql, params)


async def _check(plane, body: bytes = BODY, action: str = "read"):
    return await plane["daemon"].call(
        "POST",
        f"/mp/rbac/check_permissions?user_id={plane['user'].id}&action={action}",
        token=plane["token"],
        data=body,
        headers={"Content-Type": "application/json"},
    )


async def _warm(plane, action: str = "read") -> None:
    for _ in range(2):
        response = await _check(plane, action=action)
        assert response.status == 200, response.body
        assert response.body == {STACK: True}


async def test_team_membership_removed_by_api(plane):
    await _warm(plane)
    removed = await plane["daemon"].call(
        "DELETE", f"/api/v1/teams/{plane['team_id']}/members/{plane['user'].id}"
    )
    after = await _check(plane)

    assert removed.status == 204, removed.body
    assert after.body == {STACK: False}


async def test_team_membership_removed_by_sqlite(plane):
    await _warm(plane)
    _write(
        plane["daemon"],
        "DELETE FROM team_members WHERE user_id = ?",
        [plane["user"].id],
    )
    after = await _check(plane)

    assert after.body == {STACK: False}


async def test_user_deactivated_by_sqlite(plane):
    await _warm(plane)
    _write(
        plane["daemon"], "UPDATE users SET is_active = 0 WHERE id = ?", [plane["user"].id]
    )
    after = await _check(plane)

    assert after.body == {STACK: False}


async def test_user_deactivated_by_api(plane):
    await _warm(plane)
    deactivated = await plane["daemon"].call(
        "PATCH", f"/api/v1/users/{plane['user'].id}", json={"is_active": False}
    )
    after = await _check(plane)

    assert deactivated.status == 200, deactivated.body
    assert after.body == {STACK: False}


async def _login_with_key(plane) -> None:
    authorized = await plane["daemon"].call(
        "GET",
        f"/mp/users/authorize_server?server_id={plane['tenant_id']}",
        token=plane["user"].token,
    )
    assert authorized.status == 200, authorized.body


async def test_login_key_revoked_by_api(plane):
    await _login_with_key(plane)
    await _warm(plane)
    daemon, user = plane["daemon"], plane["user"]
    keys = await daemon.call("GET", f"/api/v1/users/{user.id}/api_keys")
    key_id = keys.body["items"][0]["id"]

    revoked = await daemon.call("DELETE", f"/api/v1/users/{user.id}/api_keys/{key_id}")
    after = await _check(plane)

    assert revoked.status == 204, revoked.body
    assert after.body == {STACK: False}


async def test_login_key_revoked_by_sqlite(plane):
    await _login_with_key(plane)
    await _warm(plane)
    _write(
        plane["daemon"],
        "UPDATE api_keys SET revoked = 1 WHERE user_id = ?",
        [plane["user"].id],
    )
    after = await _check(plane)

    assert after.body == {STACK: False}


async def test_share_removed_by_management_plane(plane):
    daemon = plane["daemon"]
    shared = await daemon.call(
        "POST",
        "/mp/rbac/resource_members",
        token=plane["token"],
        json={"resource": STACK, "user_id": plane["user"].id, "actions": ["update"]},
    )
    assert shared.status == 200, shared.body
    await _warm(plane, action="update")

    unshared = await daemon.call(
        "DELETE", f"/mp/rbac/resources?resources={STACK}", token=plane["token"]
    )
    after = await _check(plane, action="update")

    assert unshared.status == 200, unshared.body
    assert after.body == {STACK: False}


async def test_tenant_deleted_by_sqlite(plane):
    await _warm(plane)
    _write(
        plane["daemon"],
        "UPDATE tenants SET deleted = '2026-01-01T00:00:00+00:00' WHERE id = ?",
        [plane["tenant_id"]],
    )
    after = await _check(plane)

    assert after.status == 401, after.body


async def test_commits_between_concurrent_checks(plane):
    # Many checks in flight share PRAGMA data_version reads. A check sent
    # after a commit of another connection must still see that commit.
    await _warm(plane)
    background = [asyncio.create_task(_check(plane)) for _ in range(40)]
    _write(
        plane["daemon"],
        "DELETE FROM team_members WHERE user_id = ?",
        [plane["user"].id],
    )
    after = await _check(plane)
    await asyncio.gather(*background)

    assert after.body == {STACK: False}


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\x00",
        b'["\xff"]',
        "[\"stack/\u00e9\"]".encode("utf-16"),
        b'["\\ud800"]',
        b"[1e999999, -0, null, true, {}, []]",
        b"[" + b"1" * 5000 + b"]",
        json.dumps([STACK] * 1000).encode(),
        b" [\"stack/a\"] ",
        b"[\"stack/a\"]\x00",
    ],
    ids=[
        "utf16-bom-only",
        "invalid-utf8",
        "utf16",
        "lone-surrogate",
        "odd-values",
        "huge-integer",
        "duplicates",
        "whitespace",
        "trailing-nul",
    ],
)
async def test_odd_body_no_5xx(plane, body):
    first = await _check(plane, body=body)
    second = await _check(plane, body=body)

    assert first.status in (200, 400), first.body
    assert second.status == first.status
    assert second.body == first.body


async def test_oversized_body_no_5xx(plane):
    body = b"[" + b'"x",' * 999 + b'"' + b"x" * (8 * 1024 * 1024) + b'"]'

    response = await _check(plane, body=body)

    assert response.status in (400, 413), response.body
