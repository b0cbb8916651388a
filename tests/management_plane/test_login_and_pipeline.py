"""The stock zenml client logs in to an organization tenant and runs a pipeline.

Everything goes through Caddy over HTTPS: the CLI to the tenant and to the
management plane, and the tenant server to the management plane.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.management_plane.conftest import Plane, add_member, zenml_cli

PIPELINE = Path(__file__).parents[1] / "e2e" / "two_step_pipeline.py"


async def test_api_key_login_runs_pipeline(plane: Plane, zenml_venv: Path, tmp_path: Path):
    organization = await plane.admin("POST", "/api/v1/organizations", {"name": "acme"})
    tenant = await plane.admin(
        "POST",
        f"/api/v1/organizations/{organization['id']}/tenants",
        {"name": "alpha", "auth_mode": "organization"},
    )
    assert tenant["auth_mode"] == "organization"
    ada = await add_member(
        plane, organization["id"], "ada", "tenant-developer", tenant["id"]
    )
    tenant = await plane.wait_available(tenant["id"])

    async with plane.session.get(
        tenant["url"] + "/api/v1/info", ssl=plane.ssl_context()
    ) as response:
        info = await response.json()
    assert info["deployment_type"] == "cloud"
    assert info["pro_api_url"] == plane.api_url
    assert info["id"] == tenant["id"]

    # The tenant's root redirects to the daemon's landing page for it.
    async with plane.session.get(
        tenant["url"] + "/", ssl=plane.ssl_context(), allow_redirects=False
    ) as response:
        location = response.headers.get("Location", "")
    assert location == plane.api_url + "/console/workspaces/alpha"
    status, page = await plane.mp("GET", "/console/workspaces/alpha")
    assert status == 200
    assert tenant["url"] + "/docs" in page
    assert "available" in page

    # Ada takes her key from the tenant's page of the admin API, as the
    # dashboard's "Create an API key" button does.
    created = await plane.admin(
        "POST", f"/api/v1/tenants/{tenant['id']}/api_keys", token=ada.key
    )
    assert created["key"].startswith("ZENPROKEY_")
    assert created["pro_api_url"] == tenant["pro_api_url"] == plane.api_url

    workdir = tmp_path / "client"
    workdir.mkdir()
    login = await asyncio.to_thread(
        zenml_cli,
        zenml_venv / "bin" / "zenml",
        plane,
        workdir,
        "login",
        tenant["url"],
        "--api-key",
        "--pro-api-url",
        created["pro_api_url"],
        stdin=created["key"] + "\n",
        pro_api_url_in_environment=False,
    )
    assert login.returncode == 0, login.stdout[-3000:] + login.stderr[-3000:]

    # The daemon created the project "default", which ZenML creates only in
    # local mode, so the client runs the pipeline without naming one.
    run = await asyncio.to_thread(
        zenml_cli,
        zenml_venv / "bin" / "python",
        plane,
        workdir,
        str(PIPELINE),
        pro_api_url_in_environment=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "RUN_ID=" in run.stdout

    # The CLI holds a tenant session token now; revoking the key it signed
    # in with refuses that session on its next request.
    await plane.admin(
        "DELETE", f"/api/v1/users/{ada.id}/api_keys/{created['api_key_id']}"
    )
    listed = await asyncio.to_thread(
        zenml_cli,
        zenml_venv / "bin" / "zenml",
        plane,
        workdir,
        "project",
        "register",
        "second",
        pro_api_url_in_environment=False,
    )
    assert listed.returncode != 0, listed.stdout[-3000:]
