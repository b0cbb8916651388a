"""Many clients delete the same tenant at once.

The daemon keeps tenant records only here, so a delete is recorded and
gets 202 but no server work follows. Exactly one delete may be
requested: every other request gets 409 or the same idempotent 202, none a
5xx, and the tenant's events show one "delete requested".
"""

from __future__ import annotations

import asyncio

from tests.core.helpers import assert_error, create_organization, create_tenant

CLIENTS = 20


async def _delete_at_once(daemon, path: str, token: str = "admin") -> list:
    return await asyncio.gather(
        *(daemon.call("DELETE", path, token=token) for _ in range(CLIENTS))
    )


async def _delete_requests(daemon, tenant_id: str) -> list[dict]:
    events = await daemon.call("GET", f"/api/v1/tenants/{tenant_id}/events?limit=1000")
    assert events.status == 200, events.body
    return [event for event in events.body["items"] if event["action"] == "delete"]


async def test_concurrent_deletes_no_server_error(daemon):
    organization_id = await create_organization(daemon, "acme")
    tenant_id = await create_tenant(daemon, organization_id, "t1")

    responses = await _delete_at_once(daemon, f"/api/v1/tenants/{tenant_id}")
    tenant = await daemon.call("GET", f"/api/v1/tenants/{tenant_id}")

    statuses = [response.status for response in responses]
    assert set(statuses) <= {202, 409}, statuses
    assert 202 in statuses
    for response in responses:
        if response.status == 409:
            assert_error(response, 409)
        else:
            assert response.body["desired_state"] == "deleted"
    assert tenant.body["desired_state"] == "deleted"
    assert tenant.body["status"] in ("deleting", "deleted")


async def test_concurrent_deletes_one_request_recorded(daemon):
    organization_id = await create_organization(daemon, "acme")
    tenant_id = await create_tenant(daemon, organization_id, "t1")

    await _delete_at_once(daemon, f"/api/v1/tenants/{tenant_id}")

    assert len(await _delete_requests(daemon, tenant_id)) == 1


async def test_concurrent_purges_no_server_error(daemon):
    organization_id = await create_organization(daemon, "acme")
    tenant_id = await create_tenant(daemon, organization_id, "t1")

    responses = await _delete_at_once(daemon, f"/api/v1/tenants/{tenant_id}?purge=true")

    statuses = [response.status for response in responses]
    assert set(statuses) <= {202, 404, 409}, statuses
    assert 202 in statuses
