"""Viewers try every write operation of the admin API, and change nothing.

The world: organization ``acme`` with tenants ``t1`` and ``t2``, an
organization Viewer, a tenant Viewer on ``t1``, and the objects the writes
aim at. Each request carries a valid body, so a rejection comes from the
permission check and not from validation. Every write must be rejected
with 403, or 404 where the Viewer cannot see the object, and the state
database must be exactly as before.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.core.helpers import (
    User,
    add_member,
    assert_error,
    assign_role,
    build_template,
    copy_template,
    create_organization,
    create_tenant,
    create_user,
    running_daemon,
    state_snapshot,
)
from zenpro_local.api.routing import OPERATIONS

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

# Writes any signed-in user may make, so they are no Viewer's privilege. A
# user may create an organization of its own and sign out of its own
# dashboard session. It may also get a ZenML API key for itself on a tenant
# it has a role on, because the tenant's server enforces that role.
OPEN_TO_EVERY_USER = {
    ("POST", "/api/v1/organizations"),
    ("POST", "/api/v1/tenants/{tenant_id}/api_keys"),
    ("DELETE", "/api/v1/session"),
}


@dataclasses.dataclass
class World:
    ids: dict[str, str]
    viewers: dict[str, User]


async def _build_world(daemon) -> World:
    organization_id = await create_organization(daemon, "acme")
    t1 = await create_tenant(daemon, organization_id, "t1")
    await create_tenant(daemon, organization_id, "t2")
    users = {
        name: await create_user(daemon, name)
        for name in ("org-viewer", "tenant-viewer", "developer", "plain", "outsider")
    }
    await add_member(
        daemon, organization_id, users["org-viewer"].id, "organization-viewer"
    )
    for name in ("tenant-viewer", "developer", "plain"):
        await add_member(daemon, organization_id, users[name].id)
    await assign_role(
        daemon,
        organization_id,
        "tenant-viewer",
        user_id=users["tenant-viewer"].id,
        tenant_id=t1,
    )
    developer_assignment = await assign_role(
        daemon,
        organization_id,
        "tenant-developer",
        user_id=users["developer"].id,
        tenant_id=t1,
    )

    team = await daemon.call(
        "POST", f"/api/v1/organizations/{organization_id}/teams", json={"name": "crew"}
    )
    await daemon.call(
        "POST",
        f"/api/v1/teams/{team.body['id']}/members",
        json={"user_id": users["developer"].id},
    )
    role = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/roles",
        json={"name": "auditor", "scope": "organization", "permissions": ["team:read"]},
    )
    key = await daemon.call(
        "POST", f"/api/v1/users/{users['plain'].id}/api_keys", json={}
    )
    ids = {
        "organization_id": organization_id,
        "tenant_id": t1,
        "team_id": team.body["id"],
        "role_id": role.body["id"],
        "assignment_id": developer_assignment,
        "user_id": users["plain"].id,
        "team_member_id": users["developer"].id,
        "outsider_id": users["outsider"].id,
        "key_id": key.body["id"],
    }
    viewers = {name: users[name] for name in ("org-viewer", "tenant-viewer")}
    return World(ids=ids, viewers=viewers)


# For each write: the path's parameters as names in World.ids, and a valid body.
WRITES = {
    ("POST", "/api/v1/organizations/{organization_id}/roles"): (
        {},
        {"name": "new", "scope": "tenant", "permissions": ["stack:read"]},
    ),
    ("PATCH", "/api/v1/roles/{role_id}"): ({}, {"description": "x"}),
    ("DELETE", "/api/v1/roles/{role_id}"): ({}, None),
    ("POST", "/api/v1/organizations/{organization_id}/role_assignments"): (
        {},
        {"role_id": "organization-viewer", "user_id": "{user_id}"},
    ),
    ("DELETE", "/api/v1/role_assignments/{assignment_id}"): ({}, None),
    ("POST", "/api/v1/users"): ({}, {"username": "new-user"}),
    ("PATCH", "/api/v1/users/{user_id}"): ({}, {"full_name": "x"}),
    ("DELETE", "/api/v1/users/{user_id}"): ({}, None),
    ("POST", "/api/v1/users/{user_id}/api_keys"): ({}, {}),
    ("DELETE", "/api/v1/users/{user_id}/api_keys/{key_id}"): ({}, None),
    ("POST", "/api/v1/organizations/{organization_id}/members"): (
        {},
        {"user_id": "{outsider_id}"},
    ),
    ("DELETE", "/api/v1/organizations/{organization_id}/members/{user_id}"): (
        {},
        None,
    ),
    ("PATCH", "/api/v1/organizations/{organization_id}"): ({}, {"description": "x"}),
    ("DELETE", "/api/v1/organizations/{organization_id}"): ({}, None),
    ("POST", "/api/v1/organizations/{organization_id}/teams"): ({}, {"name": "new"}),
    ("PATCH", "/api/v1/teams/{team_id}"): ({}, {"description": "x"}),
    ("DELETE", "/api/v1/teams/{team_id}"): ({}, None),
    ("POST", "/api/v1/teams/{team_id}/members"): ({}, {"user_id": "{user_id}"}),
    ("DELETE", "/api/v1/teams/{team_id}/members/{user_id}"): (
        {"user_id": "team_member_id"},
        None,
    ),
    ("POST", "/api/v1/organizations/{organization_id}/tenants"): ({}, {"name": "t3"}),
    ("PATCH", "/api/v1/tenants/{tenant_id}"): ({}, {"description": "x"}),
    ("POST", "/api/v1/tenants/{tenant_id}/restart"): ({}, None),
    ("DELETE", "/api/v1/tenants/{tenant_id}"): ({}, None),
}


def _admin_writes() -> list[tuple[str, str]]:
    """Return every write of the admin API that needs an API key."""
    return [
        (operation.method, operation.path)
        for operation in OPERATIONS
        if operation.method in WRITE_METHODS
        and operation.path.startswith("/api/")
        and not operation.public
        and (operation.method, operation.path) not in OPEN_TO_EVERY_USER
    ]


def _request(world: World, method: str, path: str) -> tuple[str, dict | None]:
    renamed, body = WRITES[(method, path)]
    values = {name: world.ids[renamed.get(name, name)] for name in world.ids}
    values.update({name: world.ids[source] for name, source in renamed.items()})
    if body is not None:
        body = {
            key: value.format(**world.ids) if isinstance(value, str) else value
            for key, value in body.items()
        }
    return path.format(**values), body


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return build_template(tmp_path_factory.mktemp("viewers"), _build_world)


def test_every_write_has_a_request():
    missing = [write for write in _admin_writes() if write not in WRITES]
    assert missing == [], "add a request with a valid body for each to WRITES"


@pytest.mark.parametrize("viewer", ["org-viewer", "tenant-viewer"])
@pytest.mark.parametrize("method, path", sorted(WRITES))
async def test_viewer_write_rejected(template, tmp_path, viewer, method, path):
    if (method, path) not in _admin_writes():
        pytest.skip(f"{method} {path} is not served by this version")
    data_dir = copy_template(template[0], tmp_path)
    world = template[1]
    url, body = _request(world, method, path)

    before = state_snapshot(data_dir)
    async with running_daemon(data_dir) as daemon:
        response = await daemon.call(
            method, url, token=world.viewers[viewer].token, json=body
        )
    after = state_snapshot(data_dir)

    expected = (403,) if viewer == "org-viewer" else (403, 404)
    assert response.status in expected, response.body
    assert_error(response, response.status)
    assert after == before


# Organization deletion needs an organization without tenants.
SUPERUSER_CONFLICTS = {("DELETE", "/api/v1/organizations/{organization_id}")}


@pytest.mark.parametrize("method, path", sorted(WRITES))
async def test_superuser_write_accepted(template, tmp_path, method, path):
    """The same requests succeed for the superuser, so each one is valid."""
    if (method, path) not in _admin_writes():
        pytest.skip(f"{method} {path} is not served by this version")
    data_dir = copy_template(template[0], tmp_path)
    url, body = _request(template[1], method, path)

    async with running_daemon(data_dir) as daemon:
        response = await daemon.call(method, url, json=body)

    if (method, path) in SUPERUSER_CONFLICTS:
        assert_error(response, 409)
    else:
        assert response.status < 300, response.body
