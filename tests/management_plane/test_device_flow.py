"""The device flow: ``zenml login`` approved on the daemon's page over HTTP."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

from tests.management_plane.conftest import Plane, add_member, zenml_cli


async def test_device_flow_connects_cli(plane: Plane, zenml_venv: Path, tmp_path: Path):
    organization = await plane.admin("POST", "/api/v1/organizations", {"name": "acme"})
    tenant = await plane.admin(
        "POST",
        f"/api/v1/organizations/{organization['id']}/tenants",
        {"name": "beta", "auth_mode": "organization"},
    )
    await add_member(
        plane, organization["id"], "ada", "tenant-developer", tenant["id"],
        password="correct horse battery",
    )
    tenant = await plane.wait_available(tenant["id"])
    workdir = tmp_path / "client"
    workdir.mkdir()

    # The CLI prints the verification URL and polls until it is approved.
    login = asyncio.create_task(
        asyncio.to_thread(
            zenml_cli, zenml_venv / "bin" / "zenml", plane, workdir, "login",
            tenant["url"],
        )
    )
    user_code = await _wait_pending_code(plane)

    status, page = await plane.mp("GET", f"/device?user_code={user_code}")
    assert status == 200
    assert user_code in page
    status, page = await plane.mp(
        "POST", "/device",
        data={"user_code": user_code, "username": "ada", "password": "wrong password",
              "tenant": "beta"},
    )
    assert status == 401
    status, page = await plane.mp(
        "POST", "/device",
        data={"user_code": user_code, "username": "ada",
              "password": "correct horse battery", "tenant": "beta"},
    )
    assert status == 200, page

    result: subprocess.CompletedProcess = await asyncio.wait_for(login, 300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    status = await asyncio.to_thread(
        zenml_cli, zenml_venv / "bin" / "zenml", plane, workdir, "status"
    )
    assert status.returncode == 0, status.stderr[-3000:]
    assert tenant["url"] in status.stdout + status.stderr


async def _wait_pending_code(plane: Plane, timeout: float = 120.0) -> str:
    """Return the user code of the CLI's device authorization, once it exists."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = sqlite3.connect(plane.data_dir / "state.db")
        try:
            row = connection.execute(
                "SELECT user_code FROM device_authorizations WHERE status = 'pending'"
            ).fetchone()
        finally:
            connection.close()
        if row:
            return row[0]
        await asyncio.sleep(0.2)
    raise AssertionError("the CLI did not start a device authorization")
