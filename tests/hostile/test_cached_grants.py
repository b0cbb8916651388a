"""Cached grants and pages never outlive a change of access.

The daemon caches each API key's grants and each caller's tenant pages
until the state database changes. Every test first warms those caches,
then takes access away, through the API or through another SQLite
connection as an operator's shell would, and checks the very next request.
"""

from __future__ import annotations

import contextlib
import sqlite3

from tests.core.helpers import (
    add_member,
    assert_error,
    assign_role,
    create_organization,
    create_tenant,
    create_user,
)


async def _tenant_names(daemon, token: str) -> list[str]:
    response = await daemon.call("GET", "/api/v1/tenants", token=token)
    assert response.status == 200, response.body
    return [item["name"] for item in response.body["items"]]


async def _world(daemon):
    organization_id = await create_organization(daemon, "acme")
    t1 = await create_tenant(daemon, organization_id, "t1")
    await create_tenant(daemon, organization_id, "t2")
    user = await create_user(daemon, "carol")
    await add_member(daemon, organization_id, user.id)
    assignment = await assign_role(
        daemon, organization_id, "tenant-developer", user_id=user.id, tenant_id=t1
    )
    for _ in range(2):
        assert await _tenant_names(daemon, user.token) == ["t1"]
    return organization_id, t1, user, assignment


def _write_state(daemon, sql: str, params: list) -> None:
    with contextlib.closing(sqlite3.connect(daemon.data_dir / "state.db")) as db:
        with db:
            db.execute(sql, params)


async def test_revoked_role_hides_tenant_at_once(daemon):
    _, t1, user, assignment = await _world(daemon)

    revoked = await daemon.call("DELETE", f"/api/v1/role_assignments/{assignment}")
    names = await _tenant_names(daemon, user.token)
    tenant = await daemon.call("GET", f"/api/v1/tenants/{t1}", token=user.token)

    assert revoked.status == 204, revoked.body
    assert names == []
    assert_error(tenant, 404)


async def test_deactivated_user_rejected_at_once(daemon):
    _, _, user, _ = await _world(daemon)

    changed = await daemon.call(
        "PATCH", f"/api/v1/users/{user.id}", json={"is_active": False}
    )
    response = await daemon.call("GET", "/api/v1/tenants", token=user.token)

    assert changed.status == 200, changed.body
    assert_error(response, 401)


async def test_revoked_key_rejected_at_once(daemon):
    _, _, user, _ = await _world(daemon)
    key_id = user.token.split("_")[1]

    revoked = await daemon.call("DELETE", f"/api/v1/users/{user.id}/api_keys/{key_id}")
    response = await daemon.call("GET", "/api/v1/tenants", token=user.token)

    assert revoked.status == 204, revoked.body
    assert_error(response, 401)


async def test_external_role_removal_seen_at_once(daemon):
    _, _, user, assignment = await _world(daemon)

    _write_state(daemon, "DELETE FROM role_assignments WHERE id = ?", [assignment])

    assert await _tenant_names(daemon, user.token) == []


async def test_external_key_revocation_seen_at_once(daemon):
    _, _, user, _ = await _world(daemon)
    key_id = user.token.split("_")[1]

    _write_state(
        daemon,
        "UPDATE api_keys SET revoked = '2026-01-01T00:00:00+00:00' WHERE id = ?",
        [key_id],
    )
    response = await daemon.call("GET", "/api/v1/tenants", token=user.token)

    assert_error(response, 401)


async def test_narrowed_custom_role_applies_at_once(daemon):
    organization_id, _, user, _ = await _world(daemon)
    role = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/roles",
        json={
            "name": "lister",
            "scope": "organization",
            "permissions": ["tenant:read"],
        },
    )
    await assign_role(daemon, organization_id, role.body["id"], user_id=user.id)
    for _ in range(2):
        assert await _tenant_names(daemon, user.token) == ["t1", "t2"]

    narrowed = await daemon.call(
        "PATCH", f"/api/v1/roles/{role.body['id']}", json={"permissions": ["team:read"]}
    )

    assert narrowed.status == 200, narrowed.body
    assert await _tenant_names(daemon, user.token) == ["t1"]


async def test_cached_pages_not_shared_between_users(daemon):
    organization_id, _, user, _ = await _world(daemon)
    other = await create_user(daemon, "dave")
    await add_member(daemon, organization_id, other.id, "organization-viewer")

    for _ in range(2):
        assert await _tenant_names(daemon, user.token) == ["t1"]
        assert await _tenant_names(daemon, other.token) == ["t1", "t2"]
        assert await _tenant_names(daemon, daemon.admin_token) == ["t1", "t2"]
