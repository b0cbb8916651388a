"""Switching a local tenant to organization auth restarts it in cloud mode."""

from __future__ import annotations

from tests.management_plane.conftest import Plane, add_member


async def test_switch_local_to_organization(plane: Plane):
    organization = await plane.admin("POST", "/api/v1/organizations", {"name": "acme"})
    tenant = await plane.admin(
        "POST",
        f"/api/v1/organizations/{organization['id']}/tenants",
        {"name": "mover", "auth_mode": "local"},
    )
    assert tenant["auth_mode"] == "local"
    viewer = await add_member(
        plane, organization["id"], "vera", "tenant-viewer", tenant["id"]
    )
    tenant = await plane.wait_available(tenant["id"])
    assert await _deployment_type(plane, tenant) == "other"

    status, body = await plane.admin_call(
        "PATCH",
        f"/api/v1/tenants/{tenant['id']}",
        {"auth_mode": "organization", "description": "moved"},
    )
    assert status == 422, body
    await plane.admin(
        "PATCH", f"/api/v1/tenants/{tenant['id']}", {"auth_mode": "organization"}
    )
    tenant = await plane.wait_available(tenant["id"])
    assert tenant["auth_mode"] == "organization"
    assert await _deployment_type(plane, tenant) == "cloud"

    async with plane.session.get(
        tenant["url"] + "/api/v1/current-user",
        headers={"Authorization": f"Bearer {viewer.key}"},
        ssl=plane.ssl_context(),
    ) as response:
        assert response.status == 200, await response.text()


async def _deployment_type(plane: Plane, tenant: dict) -> str:
    async with plane.session.get(
        tenant["url"] + "/api/v1/info", ssl=plane.ssl_context()
    ) as response:
        assert response.status == 200
        return (await response.json())["deployment_type"]
