"""An organization tenant in a Docker container reaches the management plane.

The container resolves the admin host to the Docker host's gateway and
trusts the daemon's CA from a read-only mount. Caddy listens on every
interface, so the container can reach it through the bridge gateway.
"""

from __future__ import annotations

from pathlib import Path

from tests.management_plane.conftest import running_plane, add_member


async def test_docker_tenant_checks_roles(tmp_path: Path, docker_client):
    async with running_plane(tmp_path, "docker", "0.0.0.0") as plane:
        organization = await plane.admin(
            "POST", "/api/v1/organizations", {"name": "acme"}
        )
        tenant = await plane.admin(
            "POST",
            f"/api/v1/organizations/{organization['id']}/tenants",
            {"name": "boxed", "auth_mode": "organization"},
        )
        viewer = await add_member(
            plane, organization["id"], "vera", "tenant-viewer", tenant["id"]
        )
        member = await add_member(plane, organization["id"], "mo", None)
        tenant = await plane.wait_available(tenant["id"])

        for key, expected in ((viewer.key, 200), (member.key, 401)):
            async with plane.session.get(
                tenant["url"] + "/api/v1/current-user",
                headers={"Authorization": f"Bearer {key}"},
                ssl=plane.ssl_context(),
            ) as response:
                assert response.status == expected, await response.text()
