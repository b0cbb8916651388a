"""API keys from a tenant's page for the zenml client.

A tenant in organization mode signs users in through the daemon, so its
key is a daemon API key of the caller's, with the management plane URL the
client needs. Tenants in local mode are covered with their servers in
tests/lifecycle and tests/e2e.
"""

from __future__ import annotations

from tests.core.helpers import (
    add_member,
    assign_role,
    create_organization,
    create_user,
)


async def test_organization_tenant_key_is_callers_own(daemon):
    organization_id = await create_organization(daemon, "acme")
    created = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/tenants",
        json={"name": "t1", "auth_mode": "organization"},
    )
    tenant_id = created.body["id"]
    ada = await create_user(daemon, "ada")
    bob = await create_user(daemon, "bob")
    for user in (ada, bob):
        await add_member(daemon, organization_id, user.id)
    await assign_role(
        daemon, organization_id, "tenant-developer", user_id=ada.id, tenant_id=tenant_id
    )

    key = await daemon.call(
        "POST", f"/api/v1/tenants/{tenant_id}/api_keys", token=ada.token
    )
    rejected = await daemon.call(
        "POST", f"/api/v1/tenants/{tenant_id}/api_keys", token=bob.token
    )
    me = await daemon.call("GET", "/api/v1/users/me", token=key.body["key"])

    assert created.body["pro_api_url"].endswith("/mp")
    assert key.status == 201, key.body
    assert key.body["key"].startswith("ZENPROKEY_")
    assert key.body["pro_api_url"] == created.body["pro_api_url"]
    assert key.body["service_account"] is None
    assert key.body["api_key_id"] == key.body["key"].split("_")[1]
    assert me.body["username"] == "ada"
    assert rejected.status in (403, 404), rejected.body
