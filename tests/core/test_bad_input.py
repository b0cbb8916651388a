"""Invalid names and duplicates are rejected, and leave the state DB as it was."""

from __future__ import annotations

import asyncio

import pytest

from tests.core.helpers import (
    add_member,
    assert_error,
    create_organization,
    create_tenant,
    create_user,
    row_counts,
    state_snapshot,
)

# Each entry: (case, name); none is a DNS label.
INVALID_NAMES = [
    ("uppercase", "Acme"),
    ("dot", "acme.corp"),
    ("slash", "acme/corp"),
    ("backslash", "acme\\corp"),
    ("underscore", "acme_corp"),
    ("space", "acme corp"),
    ("cyrillic a", "\u0430cme"),
    ("fullwidth a", "\uff41cme"),
    ("zero-width space", "ac\u200bme"),
    ("leading hyphen", "-acme"),
    ("trailing hyphen", "acme-"),
    ("only hyphen", "-"),
    ("trailing newline", "acme\n"),
    ("leading newline", "\nacme"),
    ("64 characters", "a" * 64),
    ("empty", ""),
]
WRONG_TYPES = [("number", 5), ("null", None), ("list", ["acme"]), ("bool", True)]


class StateUnchanged:
    """Compare the state DB before and after a request that must fail."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.before = state_snapshot(daemon.data_dir)

    def check(self) -> None:
        after = state_snapshot(self.daemon.data_dir)
        assert row_counts(after) == row_counts(self.before)
        assert after == self.before


@pytest.fixture
async def organization_id(daemon):
    return await create_organization(daemon, "acme-org")


def _name_requests(organization_id: str) -> list[tuple[str, str]]:
    return [
        ("POST", "/api/v1/organizations"),
        ("PATCH", f"/api/v1/organizations/{organization_id}"),
        ("POST", f"/api/v1/organizations/{organization_id}/tenants"),
    ]


@pytest.mark.parametrize("case, name", INVALID_NAMES, ids=[c for c, _ in INVALID_NAMES])
async def test_invalid_name_rejected(daemon, organization_id, case, name):
    for method, path in _name_requests(organization_id):
        state = StateUnchanged(daemon)
        response = await daemon.call(method, path, json={"name": name})
        error = assert_error(response, 422, field="name")
        assert error["code"] == "validation_error"
        assert "DNS label" in error["message"], error
        state.check()


@pytest.mark.parametrize("case, value", WRONG_TYPES, ids=[c for c, _ in WRONG_TYPES])
async def test_name_wrong_type_rejected(daemon, organization_id, case, value):
    for method, path in _name_requests(organization_id):
        state = StateUnchanged(daemon)
        response = await daemon.call(method, path, json={"name": value})
        if method == "PATCH" and value is None:
            # A PATCH with "name": null leaves the name as it is.
            assert response.status == 200, response.body
            continue
        assert_error(response, 422, field="name")
        state.check()


@pytest.mark.parametrize("name", ["a", "0", "a-b", "a--b", "x" * 63, "123"])
async def test_valid_name_accepted(daemon, organization_id, name):
    organization = await daemon.call(
        "POST", "/api/v1/organizations", json={"name": name}
    )
    assert organization.status == 201, organization.body
    assert organization.body["name"] == name

    tenant = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/tenants",
        json={"name": name},
    )
    assert tenant.status == 202, tenant.body
    assert tenant.body["name"] == name


async def test_invalid_username_rejected(daemon):
    for username in ("", "bob\n", "-bob", "bob smith", "b" * 65, "b\u00f6b"):
        state = StateUnchanged(daemon)
        response = await daemon.call(
            "POST", "/api/v1/users", json={"username": username}
        )
        assert_error(response, 422, field="username")
        state.check()


async def test_invalid_other_fields_rejected(daemon, organization_id):
    organization = f"/api/v1/organizations/{organization_id}"
    cases = [
        ("POST", "/api/v1/organizations", {"name": "ok", "description": "d" * 1001}),
        ("POST", organization + "/tenants", {"name": "ok", "zenml_version": "latest"}),
        ("POST", organization + "/teams", {"name": ""}),
        (
            "POST",
            organization + "/roles",
            {"name": "r", "scope": "galaxy", "permissions": ["stack:read"]},
        ),
        (
            "POST",
            organization + "/roles",
            {"name": "r", "scope": "tenant", "permissions": ["stack:fly"]},
        ),
        (
            "POST",
            organization + "/roles",
            {"name": "r", "scope": "tenant", "permissions": ["team:read"]},
        ),
        (
            "POST",
            organization + "/roles",
            {"name": "r", "scope": "tenant", "permissions": []},
        ),
        ("POST", "/api/v1/users", {"username": "ok", "password": "short"}),
        ("POST", "/api/v1/users/me/api_keys", {"expires_in_days": 0}),
        ("POST", "/api/v1/users/me/api_keys", {"expires_in_days": "7"}),
    ]
    expected_fields = [
        "description",
        "zenml_version",
        "name",
        "scope",
        "permissions",
        "permissions",
        "permissions",
        "password",
        "expires_in_days",
        "expires_in_days",
    ]
    for (method, path, body), field in zip(cases, expected_fields, strict=True):
        state = StateUnchanged(daemon)
        response = await daemon.call(method, path, json=body)
        assert_error(response, 422, field=field)
        state.check()


@pytest.mark.parametrize(
    "version", ["latest", "0.98", "0.98.0\n", "v0.98.0", "\u0661.\u0662.\u0663"]
)
async def test_invalid_zenml_version_rejected(daemon, organization_id, version):
    state = StateUnchanged(daemon)
    response = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/tenants",
        json={"name": "prod", "zenml_version": version},
    )
    assert_error(response, 422, field="zenml_version")
    state.check()


async def test_invalid_pagination_rejected(daemon):
    for query, field in (
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
    ):
        response = await daemon.call("GET", f"/api/v1/organizations?{query}")
        assert_error(response, 422, field=field)
    response = await daemon.call("GET", "/api/v1/tenants?include_deleted=maybe")
    assert_error(response, 422, field="include_deleted")


# Duplicates


async def test_duplicate_organization_name_conflicts(daemon, organization_id):
    await create_organization(daemon, "other-org")
    state = StateUnchanged(daemon)

    created = await daemon.call(
        "POST", "/api/v1/organizations", json={"name": "acme-org"}
    )
    error = assert_error(created, 409, field="name")
    assert error["code"] == "conflict"
    renamed = await daemon.call(
        "PATCH", f"/api/v1/organizations/{organization_id}", json={"name": "other-org"}
    )
    assert_error(renamed, 409, field="name")
    state.check()


async def test_duplicate_tenant_name_conflicts(daemon, organization_id):
    other = await create_organization(daemon, "other-org")
    await create_tenant(daemon, organization_id, "prod")
    state = StateUnchanged(daemon)

    for target in (organization_id, other):
        response = await daemon.call(
            "POST",
            f"/api/v1/organizations/{target}/tenants",
            json={"name": "prod"},
        )
        assert_error(response, 409, field="name")
    state.check()


async def test_duplicate_team_and_role_conflict(daemon, organization_id):
    organization = f"/api/v1/organizations/{organization_id}"
    team = {"name": "crew"}
    role = {"name": "auditor", "scope": "tenant", "permissions": ["stack:read"]}
    assert (await daemon.call("POST", organization + "/teams", json=team)).status == 201
    assert (await daemon.call("POST", organization + "/roles", json=role)).status == 201
    state = StateUnchanged(daemon)

    assert_error(await daemon.call("POST", organization + "/teams", json=team), 409)
    assert_error(await daemon.call("POST", organization + "/roles", json=role), 409)
    state.check()


async def test_duplicate_user_and_member_conflict(daemon, organization_id):
    user = await create_user(daemon, "bob")
    await add_member(daemon, organization_id, user.id)
    state = StateUnchanged(daemon)

    again = await daemon.call("POST", "/api/v1/users", json={"username": "bob"})
    assert_error(again, 409, field="username")
    member = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/members",
        json={"user_id": user.id},
    )
    assert_error(member, 409)
    state.check()


async def test_duplicate_team_member_conflicts(daemon, organization_id):
    user = await create_user(daemon, "bob")
    await add_member(daemon, organization_id, user.id)
    team = await daemon.call(
        "POST", f"/api/v1/organizations/{organization_id}/teams", json={"name": "crew"}
    )
    path = f"/api/v1/teams/{team.body['id']}/members"
    assert (await daemon.call("POST", path, json={"user_id": user.id})).status == 204
    state = StateUnchanged(daemon)

    assert_error(await daemon.call("POST", path, json={"user_id": user.id}), 409)
    state.check()


async def test_concurrent_duplicates_one_wins(daemon, organization_id):
    requests = [
        ("/api/v1/organizations", {"name": "race"}),
        (f"/api/v1/organizations/{organization_id}/tenants", {"name": "race"}),
        (f"/api/v1/organizations/{organization_id}/teams", {"name": "race"}),
    ]
    for path, body in requests:
        responses = await asyncio.gather(
            *(daemon.call("POST", path, json=body) for _ in range(20))
        )
        statuses = sorted(response.status for response in responses)
        assert statuses[0] in (201, 202)
        assert statuses[1:] == [409] * 19
        for response in responses[1:]:
            if response.status == 409:
                assert_error(response, 409)


# Other rejected requests


async def test_organization_with_tenants_not_deleted(daemon, organization_id):
    await create_tenant(daemon, organization_id, "prod")
    state = StateUnchanged(daemon)

    response = await daemon.call("DELETE", f"/api/v1/organizations/{organization_id}")
    error = assert_error(response, 409)
    assert "tenant" in error["message"]
    state.check()


async def test_member_of_other_scope_rejected(daemon, organization_id):
    user = await create_user(daemon, "bob")
    state = StateUnchanged(daemon)
    response = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/members",
        json={"user_id": user.id, "role_id": "tenant-viewer"},
    )
    assert_error(response, 422, field="role_id")
    both = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/members",
        json={"user_id": user.id, "username": "bob"},
    )
    assert_error(both, 422, field="user_id")
    state.check()


async def test_assignment_holder_must_be_one(daemon, organization_id):
    user = await create_user(daemon, "bob")
    await add_member(daemon, organization_id, user.id)
    team = await daemon.call(
        "POST", f"/api/v1/organizations/{organization_id}/teams", json={"name": "crew"}
    )
    outsider = await create_user(daemon, "eve")
    path = f"/api/v1/organizations/{organization_id}/role_assignments"
    state = StateUnchanged(daemon)

    for body, field in (
        ({"role_id": "organization-viewer"}, "user_id"),
        (
            {
                "role_id": "organization-viewer",
                "user_id": user.id,
                "team_id": team.body["id"],
            },
            "user_id",
        ),
        ({"role_id": "organization-viewer", "user_id": outsider.id}, "user_id"),
        ({"role_id": "tenant-viewer", "user_id": user.id}, "tenant_id"),
    ):
        response = await daemon.call("POST", path, json=body)
        assert_error(response, 422, field=field)
    state.check()


async def test_predefined_role_not_changed(daemon):
    state = StateUnchanged(daemon)
    changed = await daemon.call(
        "PATCH", "/api/v1/roles/organization-viewer", json={"description": "x"}
    )
    assert_error(changed, 409)
    deleted = await daemon.call("DELETE", "/api/v1/roles/organization-viewer")
    assert_error(deleted, 409)
    state.check()


async def test_rejected_tenant_change_keeps_description(daemon, organization_id):
    tenant_id = await create_tenant(daemon, organization_id, "prod")
    state = StateUnchanged(daemon)

    response = await daemon.call(
        "PATCH",
        f"/api/v1/tenants/{tenant_id}",
        json={"description": "new", "zenml_version": "0.99.0"},
    )
    assert_error(response, 409)
    state.check()
