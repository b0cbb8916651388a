"""Tenants answer over HTTPS through Caddy, verified against the daemon's CA."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.lifecycle.test_tenant_lifecycle import local_url


async def https_context(tenant_daemon) -> ssl.SSLContext:
    response = await tenant_daemon.call("GET", "/api/v1/ca.pem", token=None)
    assert response.status == 200
    assert response.body.startswith("-----BEGIN CERTIFICATE-----")
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=response.body)
    return context


async def fetch(url: str, context: ssl.SSLContext) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context) as response:
            return response.status, response.content_type, await response.text()


async def fetch_json(url: str, context: ssl.SSLContext) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context) as response:
            return response.status, await response.json(content_type=None)


@pytest.mark.parametrize("runtime_kind", ["docker"], indirect=True)
async def test_two_tenants_served_over_https(tenant_daemon):
    organization = await tenant_daemon.create_organization()
    alpha = await tenant_daemon.create_tenant(organization["id"], "alpha")
    beta = await tenant_daemon.create_tenant(organization["id"], "beta")
    alpha = await tenant_daemon.wait_status(alpha["id"], "available")
    beta = await tenant_daemon.wait_status(beta["id"], "available")
    context = await https_context(tenant_daemon)

    for tenant in (alpha, beta):
        status, info = await fetch_json(f"{tenant['url']}/api/v1/info", context)
        assert status == 200
        _, direct = await fetch_json(
            f"{await local_url(tenant_daemon, tenant['id'])}/api/v1/info", None
        )
        assert info["id"] == direct["id"]
        tenant["server_id"] = info["id"]
    assert alpha["server_id"] != beta["server_id"]

    status, content_type, page = await fetch(f"{alpha['url']}/docs", context)
    assert status == 200
    assert content_type == "text/html"
    assert "swagger" in page.lower()


@pytest.mark.parametrize("runtime_kind", ["docker"], indirect=True)
async def test_unavailable_and_unknown_hosts(tenant_daemon):
    organization = await tenant_daemon.create_organization()
    alpha = await tenant_daemon.create_tenant(organization["id"], "alpha")
    await tenant_daemon.wait_status(alpha["id"], "available")
    context = await https_context(tenant_daemon)
    port = urlsplit(alpha["url"]).port

    response = await tenant_daemon.call(
        "PATCH", f"/api/v1/tenants/{alpha['id']}", json={"desired_state": "deactivated"}
    )
    assert response.status == 202
    await tenant_daemon.wait_status(alpha["id"], "deactivated")
    status, body = await fetch_json(f"{alpha['url']}/api/v1/info", context)
    assert status == 503
    assert "deactivated" in str(body)

    status, _, _ = await fetch(f"https://nobody.zenml.localhost:{port}/", context)
    assert status == 404

    response = await tenant_daemon.call("DELETE", f"/api/v1/tenants/{alpha['id']}")
    assert response.status == 202
    await tenant_daemon.wait_status(alpha["id"], "deleted")
    status, _, _ = await fetch(f"{alpha['url']}/api/v1/info", context)
    assert status == 404


async def test_organization_mode_needs_reachable_caddy(tenant_daemon):
    # This daemon's Caddy listens on 127.0.0.1 only, out of containers' reach.
    organization = await tenant_daemon.create_organization()

    response = await tenant_daemon.call(
        "POST",
        f"/api/v1/organizations/{organization['id']}/tenants",
        json={"name": "alpha", "auth_mode": "organization"},
    )
    listed = await tenant_daemon.call(
        "GET", f"/api/v1/tenants?organization_id={organization['id']}"
    )

    if tenant_daemon.kind == "docker":
        assert response.status == 422, response.body
        assert "caddy.bind" in response.body["error"]["message"]
        assert listed.body["total"] == 0
    else:
        assert response.status == 202, response.body
