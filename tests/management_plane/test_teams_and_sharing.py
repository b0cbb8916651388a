"""Team grants and resource shares decide access inside an organization tenant."""

from __future__ import annotations

import sqlite3

from tests.management_plane.conftest import Plane, add_member
from tests.management_plane.test_role_matrix import TenantClient, _stack_body


async def test_team_grant_and_share(plane: Plane):
    organization = await plane.admin("POST", "/api/v1/organizations", {"name": "acme"})
    org_id = organization["id"]
    tenant = await plane.admin(
        "POST",
        f"/api/v1/organizations/{org_id}/tenants",
        {"name": "shared", "auth_mode": "organization"},
    )
    tenant_id = tenant["id"]
    boss = await add_member(plane, org_id, "boss", "organization-admin")
    viewer = await add_member(plane, org_id, "vera", "tenant-viewer", tenant_id)
    newcomer = await add_member(plane, org_id, "tom", None)
    team = await plane.admin(
        "POST", f"/api/v1/organizations/{org_id}/teams", {"name": "builders"}
    )
    await plane.admin(
        "POST",
        f"/api/v1/organizations/{org_id}/role_assignments",
        {"role_id": "tenant-developer", "team_id": team["id"], "tenant_id": tenant_id},
    )
    tenant = await plane.wait_available(tenant_id)
    as_boss = TenantClient(plane, tenant["url"], boss.key)
    as_viewer = TenantClient(plane, tenant["url"], viewer.key)
    as_newcomer = TenantClient(plane, tenant["url"], newcomer.key)

    status, stack = await as_boss.call(
        "POST", "/api/v1/stacks", await _stack_body(as_boss, "boss-stack")
    )
    assert status == 200, stack

    # Team grant: joining the team gives Developer, leaving takes it away.
    status, body = await as_newcomer.call("GET", "/api/v1/stacks")
    assert status == 401, body
    await plane.admin(
        "POST", f"/api/v1/teams/{team['id']}/members", {"user_id": newcomer.id}
    )
    status, body = await as_newcomer.call(
        "POST", "/api/v1/stacks", await _stack_body(as_boss, "team-stack")
    )
    assert status == 200, body
    await plane.admin("DELETE", f"/api/v1/teams/{team['id']}/members/{newcomer.id}")
    status, body = await as_newcomer.call("GET", "/api/v1/stacks")
    assert status == 401, body

    # Share: the viewer may update the boss's stack only once it is shared.
    rename = {"name": "renamed-stack"}
    status, body = await as_viewer.call("PUT", f"/api/v1/stacks/{stack['id']}", rename)
    assert status == 403, body
    status, body = await as_boss.call(
        "POST",
        "/api/v1/users/resource_membership"
        f"?resource_type=stack&resource_id={stack['id']}&user_id={viewer.id}",
        ["read", "update"],
    )
    assert status == 200, body
    status, body = await as_viewer.call("PUT", f"/api/v1/stacks/{stack['id']}", rename)
    assert status == 200, body
    assert body["name"] == "renamed-stack"

    # Deleting the stack forgets its shares in the daemon.
    status, body = await as_boss.call("DELETE", f"/api/v1/stacks/{stack['id']}")
    assert status == 200, body
    assert share_count(plane, tenant_id) == 0


def share_count(plane: Plane, tenant_id: str) -> int:
    """Return how many shares the daemon's state holds for the tenant."""
    connection = sqlite3.connect(plane.data_dir / "state.db")
    try:
        count = connection.execute(
            "SELECT count(*) FROM resource_shares WHERE tenant_id = ?", [tenant_id]
        ).fetchone()[0]
    finally:
        connection.close()
    return count
