"""Permission checks that tenant servers send: decisions, bad bodies, caching.

The daemon keeps each encoded response until the state changes. Every test
that takes access away first sends the same check once, so the response is
cached, and then checks the very next one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid

import pytest

from tests.core.helpers import (
    add_member,
    assert_error,
    assign_role,
    create_organization,
    create_tenant,
    create_user,
    tenant_server_token,
)

STACKS = [f"stack/{uuid.uuid4()}" for _ in range(3)]


@pytest.fixture
async def plane(daemon):
    """A tenant record with known client credentials and one Viewer."""
    organization_id = await create_organization(daemon, "acme")
    tenant_id = await create_tenant(daemon, organization_id, "t1")
    token = await tenant_server_token(daemon, tenant_id)
    user = await create_user(daemon, "vera")
    await add_member(daemon, organization_id, user.id)
    assignment = await assign_role(
        daemon, organization_id, "tenant-viewer", user_id=user.id, tenant_id=tenant_id
    )
    return daemon, token, user, assignment


async def _check(daemon, token: str, user_id: str, action: str, body) -> dict:
    response = await daemon.call(
        "POST",
        f"/mp/rbac/check_permissions?user_id={user_id}&action={action}",
        token=token,
        json=body,
    )
    assert response.status == 200, response.body
    return response.body


async def test_viewer_may_read_not_update(plane):
    daemon, token, user, _ = plane

    reads = await _check(daemon, token, user.id, "read", STACKS)
    updates = await _check(daemon, token, user.id, "update", STACKS)

    assert reads == {stack: True for stack in STACKS}
    assert updates == {stack: False for stack in STACKS}


async def test_revoked_role_counts_on_next_check(plane):
    daemon, token, user, assignment = plane
    assert await _check(daemon, token, user.id, "read", STACKS) == {
        stack: True for stack in STACKS
    }

    revoked = await daemon.call("DELETE", f"/api/v1/role_assignments/{assignment}")
    after = await _check(daemon, token, user.id, "read", STACKS)

    assert revoked.status == 204, revoked.body
    assert after == {stack: False for stack in STACKS}


async def test_external_share_counts_on_next_check(plane):
    daemon, token, user, _ = plane
    assert await _check(daemon, token, user.id, "update", STACKS[:1]) == {
        STACKS[0]: False
    }

    with contextlib.closing(sqlite3.connect(daemon.data_dir / "state.db")) as db:
        with db:
            tenant_id = db.execute("SELECT id FROM tenants").fetchone()[0]
            db.execute(
                "INSERT INTO resource_shares (tenant_id, resource, resource_type, "
                "user_id, actions, created) VALUES (?, ?, 'stack', ?, ?, '')",
                [tenant_id, STACKS[0], user.id, '["update"]'],
            )
    after = await _check(daemon, token, user.id, "update", STACKS[:1])

    assert after == {STACKS[0]: True}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"stack": 1}',
        b"[" * 100_000,
        b"[" + b'"x",' * 1000 + b'"x"]',
    ],
    ids=["empty", "not-json", "object", "nested-too-deeply", "too-many"],
)
async def test_malformed_body_rejected(plane, body):
    daemon, token, user, _ = plane

    response = await daemon.call(
        "POST",
        f"/mp/rbac/check_permissions?user_id={user.id}&action=read",
        token=token,
        data=body,
        headers={"Content-Type": "application/json"},
    )

    error = assert_error(response, 400)
    assert "JSON list" in error["message"]


async def test_user_token_rejected(plane):
    daemon, _, user, _ = plane

    response = await daemon.call(
        "POST",
        f"/mp/rbac/check_permissions?user_id={user.id}&action=read",
        token=user.token,
        json=STACKS,
    )

    assert response.status in (401, 403), response.body

