"""A tenant server that starts while the daemon is down recovers with it.

The container restarts while the daemon and its Caddy are stopped, so its
start-up report to the management plane fails and the server exits;
Docker's restart policy keeps retrying. Once the daemon is back, the
tenant serves users again without an operator.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


from tests.management_plane.conftest import add_member, running_plane
from zenpro_local.runtime.base import LABEL_TENANT

RECOVERY_TIMEOUT = 180.0


async def test_tenant_recovers_after_outage(tmp_path: Path, docker_client):
    async with running_plane(tmp_path, "docker", "0.0.0.0") as plane:
        organization = await plane.admin(
            "POST", "/api/v1/organizations", {"name": "acme"}
        )
        tenant = await plane.admin(
            "POST",
            f"/api/v1/organizations/{organization['id']}/tenants",
            {"name": "outage", "auth_mode": "organization"},
        )
        viewer = await add_member(
            plane, organization["id"], "vera", "tenant-viewer", tenant["id"]
        )
        tenant = await plane.wait_available(tenant["id"])
        container = docker_client.containers.list(
            filters={"label": f"{LABEL_TENANT}={tenant['id']}"}
        )[0]

        await plane.stop_daemon()
        await asyncio.to_thread(container.restart, timeout=5)
        failed_start = await _wait_restarted(container)
        assert failed_start, "the server started without the management plane"

        started = time.monotonic()
        await plane.start_daemon()
        deadline = started + RECOVERY_TIMEOUT
        status = None
        while time.monotonic() < deadline:
            try:
                async with plane.session.get(
                    tenant["url"] + "/api/v1/current-user",
                    headers={"Authorization": f"Bearer {viewer.key}"},
                    ssl=plane.ssl_context(),
                ) as response:
                    status = response.status
            except OSError:
                status = None
            if status == 200:
                break
            await asyncio.sleep(1)
        assert status == 200
        print(f"tenant served users {time.monotonic() - started:.1f} s after restart")


async def _wait_restarted(container, timeout: float = 120.0) -> bool:
    """Return True once Docker has restarted the failing server at least once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.to_thread(container.reload)
        if container.attrs["RestartCount"] >= 1:
            return True
        await asyncio.sleep(1)
    return False
