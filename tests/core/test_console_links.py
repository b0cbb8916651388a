"""Links that the zenml client prints into ZenML Pro's dashboard."""

from __future__ import annotations

import aiohttp

from tests.core.helpers import create_organization


async def _get(daemon, path: str) -> aiohttp.ClientResponse:
    async with daemon.session.get(daemon.url + path, allow_redirects=False) as response:
        await response.read()
        return response


async def test_run_link_redirects_to_tenant_page(daemon):
    organization_id = await create_organization(daemon, "acme")
    await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/tenants",
        json={"name": "alpha", "auth_mode": "organization"},
    )

    response = await _get(daemon, "/mp/console/workspaces/alpha/projects/p1/runs/r1")
    page = await _get(daemon, "/mp/console/workspaces/alpha")

    assert response.status == 302
    assert response.headers["Location"].endswith("/mp/console/workspaces/alpha")
    assert page.status == 200


async def test_run_link_name_quoted(daemon):
    response = await _get(daemon, "/mp/console/workspaces/a%0d%0aX:%20y/runs/r1")

    assert response.status == 302
    location = response.headers["Location"]
    assert "\r" not in location
    assert "\n" not in location
    assert "/workspaces/a%0D%0AX" in location
