"""Event messages name users, teams and tenants; both event lists show them."""

from __future__ import annotations

from tests.core.helpers import (
    add_member,
    assign_role,
    create_organization,
    create_team,
    create_tenant,
    create_user,
)


async def _messages(daemon, tenant_id: str) -> list[str]:
    events = await daemon.call("GET", f"/api/v1/tenants/{tenant_id}/events")
    assert events.status == 200, events.body
    return [event["message"] for event in events.body["items"]]


async def test_grant_and_revoke_name_user_and_tenant(daemon):
    organization_id = await create_organization(daemon, "acme")
    tenant_id = await create_tenant(daemon, organization_id, "alpha")
    user = await create_user(daemon, "vera")
    await add_member(daemon, organization_id, user.id)

    assignment = await assign_role(
        daemon, organization_id, "tenant-viewer", user_id=user.id, tenant_id=tenant_id
    )
    revoked = await daemon.call("DELETE", f"/api/v1/role_assignments/{assignment}")
    assert revoked.status == 204, revoked.body

    messages = await _messages(daemon, tenant_id)
    assert "role 'Viewer' given to user 'vera' on tenant 'alpha'" in messages
    assert "role 'Viewer' taken from user 'vera' on tenant 'alpha'" in messages


async def test_team_grant_names_team(daemon):
    organization_id = await create_organization(daemon, "acme")
    tenant_id = await create_tenant(daemon, organization_id, "alpha")
    team_id = await create_team(daemon, organization_id, "readers")

    await assign_role(
        daemon,
        organization_id,
        "tenant-developer",
        team_id=team_id,
        tenant_id=tenant_id,
    )

    messages = await _messages(daemon, tenant_id)
    assert "role 'Developer' given to team 'readers' on tenant 'alpha'" in messages


async def test_team_membership_names_user(daemon):
    organization_id = await create_organization(daemon, "acme")
    user = await create_user(daemon, "vera")
    await add_member(daemon, organization_id, user.id)
    team_id = await create_team(daemon, organization_id, "readers")
    members = f"/api/v1/teams/{team_id}/members"

    joined = await daemon.call("POST", members, json={"user_id": user.id})
    left = await daemon.call("DELETE", f"{members}/{user.id}")

    assert joined.status == 204, joined.body
    assert left.status == 204, left.body
    events = await daemon.call(
        "GET", f"/api/v1/organizations/{organization_id}/events"
    )
    assert events.status == 200, events.body
    messages = [event["message"] for event in events.body["items"]]
    assert "user 'vera' added to team 'readers'" in messages
    assert "user 'vera' removed from team 'readers'" in messages


async def test_organization_events_include_tenant_events(daemon):
    organization_id = await create_organization(daemon, "acme")
    tenant_id = await create_tenant(daemon, organization_id, "alpha")
    path = f"/api/v1/organizations/{organization_id}/events"

    everything = await daemon.call("GET", path)
    tenant_only = await daemon.call("GET", f"/api/v1/tenants/{tenant_id}/events")
    last_id = everything.body["items"][-1]["id"]
    newer = await daemon.call("GET", f"{path}?after={last_id}")

    assert everything.status == 200, everything.body
    ids = [event["id"] for event in everything.body["items"]]
    assert ids == sorted(ids)
    assert {event["id"] for event in tenant_only.body["items"]} <= set(ids)
    assert any(event["tenant_id"] == tenant_id for event in everything.body["items"])
    assert newer.body == {"items": [], "total": 0, "offset": 0, "limit": 50}
