"""Who may do what: predefined roles against each endpoint family.

The world: organization ``acme`` with tenants ``t1`` and ``t2``, one user
per predefined organization role, and three users that are organization
Members with one tenant role each on ``t1``. Every row of the table starts
a daemon on a fresh copy of that world.
"""

from __future__ import annotations

import dataclasses
import uuid

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
    operation_for,
    running_daemon,
)

ORGANIZATION_ROLES = {
    "org-admin": "organization-admin",
    "org-manager": "organization-manager",
    "org-viewer": "organization-viewer",
    "org-member": "organization-member",
}
TENANT_ROLES = {
    "tenant-admin": "tenant-admin",
    "tenant-developer": "tenant-developer",
    "tenant-viewer": "tenant-viewer",
}
ACTORS = tuple(ORGANIZATION_ROLES) + tuple(TENANT_ROLES)


@dataclasses.dataclass
class World:
    organization_id: str
    tenants: dict[str, str]
    users: dict[str, User]
    team_id: str
    role_id: str
    # The tenant Viewer assignment of user "tenant-viewer" on t1.
    tenant_assignment_id: str

    def tenant(self, name: str) -> str:
        return self.tenants[name]

    def user(self, name: str) -> User:
        return self.users[name]


async def _build_world(daemon) -> World:
    organization_id = await create_organization(daemon, "acme")
    tenants = {
        name: await create_tenant(daemon, organization_id, name)
        for name in ("t1", "t2")
    }
    users = {}
    for name in ACTORS + ("plain", "outsider"):
        users[name] = await create_user(daemon, name)

    for name, role_id in ORGANIZATION_ROLES.items():
        await add_member(daemon, organization_id, users[name].id, role_id)
    await add_member(daemon, organization_id, users["plain"].id)
    tenant_assignment_id = ""
    for name, role_id in TENANT_ROLES.items():
        await add_member(daemon, organization_id, users[name].id)
        tenant_assignment_id = await assign_role(
            daemon,
            organization_id,
            role_id,
            user_id=users[name].id,
            tenant_id=tenants["t1"],
        )

    team = await daemon.call(
        "POST", f"/api/v1/organizations/{organization_id}/teams", json={"name": "crew"}
    )
    role = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/roles",
        json={"name": "auditor", "scope": "organization", "permissions": ["team:read"]},
    )
    return World(
        organization_id=organization_id,
        tenants=tenants,
        users=users,
        team_id=team.body["id"],
        role_id=role.body["id"],
        tenant_assignment_id=tenant_assignment_id,
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return build_template(tmp_path_factory.mktemp("roles"), _build_world)


@pytest.fixture
async def world(template, tmp_path):
    """A daemon on a fresh copy of the world, and the world's ids."""
    data_dir = copy_template(template[0], tmp_path)
    async with running_daemon(data_dir) as daemon:
        yield daemon, template[1]


def _organization(world: World) -> str:
    return f"/api/v1/organizations/{world.organization_id}"


# Each action: (method, path, body) built from the world's ids.
ACTIONS = {
    "organization.read": lambda w: ("GET", _organization(w), None),
    "organization.update": lambda w: ("PATCH", _organization(w), {"description": "x"}),
    "organization.delete": lambda w: ("DELETE", _organization(w), None),
    "tenant.create": lambda w: (
        "POST",
        _organization(w) + "/tenants",
        {"name": "t3"},
    ),
    "tenant.read": lambda w: ("GET", f"/api/v1/tenants/{w.tenant('t1')}", None),
    "tenant.read_other": lambda w: ("GET", f"/api/v1/tenants/{w.tenant('t2')}", None),
    "tenant.events": lambda w: (
        "GET",
        f"/api/v1/tenants/{w.tenant('t1')}/events",
        None,
    ),
    "tenant.update": lambda w: (
        "PATCH",
        f"/api/v1/tenants/{w.tenant('t1')}",
        {"description": "x"},
    ),
    "tenant.delete": lambda w: ("DELETE", f"/api/v1/tenants/{w.tenant('t1')}", None),
    "member.list": lambda w: ("GET", _organization(w) + "/members", None),
    "member.add": lambda w: (
        "POST",
        _organization(w) + "/members",
        {"user_id": w.user("outsider").id},
    ),
    "member.remove": lambda w: (
        "DELETE",
        _organization(w) + f"/members/{w.user('plain').id}",
        None,
    ),
    "team.list": lambda w: ("GET", _organization(w) + "/teams", None),
    "team.read": lambda w: ("GET", f"/api/v1/teams/{w.team_id}", None),
    "team.create": lambda w: ("POST", _organization(w) + "/teams", {"name": "new"}),
    "team.update": lambda w: (
        "PATCH",
        f"/api/v1/teams/{w.team_id}",
        {"description": "x"},
    ),
    "team.delete": lambda w: ("DELETE", f"/api/v1/teams/{w.team_id}", None),
    "team.add_member": lambda w: (
        "POST",
        f"/api/v1/teams/{w.team_id}/members",
        {"user_id": w.user("plain").id},
    ),
    "role.list": lambda w: ("GET", _organization(w) + "/roles", None),
    "role.read": lambda w: ("GET", f"/api/v1/roles/{w.role_id}", None),
    "role.create": lambda w: (
        "POST",
        _organization(w) + "/roles",
        {"name": "new", "scope": "tenant", "permissions": ["stack:read"]},
    ),
    "role.update": lambda w: (
        "PATCH",
        f"/api/v1/roles/{w.role_id}",
        {"permissions": ["team:read", "member:read"]},
    ),
    "role.delete": lambda w: ("DELETE", f"/api/v1/roles/{w.role_id}", None),
    "assignment.list": lambda w: ("GET", _organization(w) + "/role_assignments", None),
    "organization.events": lambda w: ("GET", _organization(w) + "/events", None),
    "assignment.create_organization": lambda w: (
        "POST",
        _organization(w) + "/role_assignments",
        {"role_id": "organization-viewer", "user_id": w.user("plain").id},
    ),
    "assignment.create_tenant": lambda w: (
        "POST",
        _organization(w) + "/role_assignments",
        {
            "role_id": "tenant-viewer",
            "user_id": w.user("plain").id,
            "tenant_id": w.tenant("t1"),
        },
    ),
    "assignment.delete_tenant": lambda w: (
        "DELETE",
        f"/api/v1/role_assignments/{w.tenant_assignment_id}",
        None,
    ),
}

# Expected status per action, in the order of ACTORS: org-admin,
# org-manager, org-viewer, org-member, tenant-admin, tenant-developer,
# tenant-viewer. The organization still has tenants, so even its Admin gets
# 409 on delete; 404 means the actor cannot see the object at all.
EXPECTED = {
    "organization.read": (200, 200, 200, 200, 200, 200, 200),
    "organization.update": (200, 200, 403, 403, 403, 403, 403),
    "organization.delete": (409, 403, 403, 403, 403, 403, 403),
    "tenant.create": (202, 202, 403, 403, 403, 403, 403),
    "tenant.read": (200, 200, 200, 404, 200, 200, 200),
    "tenant.read_other": (200, 200, 200, 404, 404, 404, 404),
    "tenant.events": (200, 200, 200, 404, 200, 200, 200),
    "tenant.update": (202, 202, 403, 404, 202, 403, 403),
    "tenant.delete": (202, 202, 403, 404, 403, 403, 403),
    "member.list": (200, 200, 200, 200, 200, 200, 200),
    "member.add": (201, 201, 403, 403, 403, 403, 403),
    "member.remove": (204, 204, 403, 403, 403, 403, 403),
    "team.list": (200, 200, 200, 200, 200, 200, 200),
    "team.read": (200, 200, 200, 200, 200, 200, 200),
    "team.create": (201, 201, 403, 403, 403, 403, 403),
    "team.update": (200, 200, 403, 403, 403, 403, 403),
    "team.delete": (204, 204, 403, 403, 403, 403, 403),
    "team.add_member": (204, 204, 403, 403, 403, 403, 403),
    "role.list": (200, 200, 200, 200, 200, 200, 200),
    "role.read": (200, 200, 200, 200, 200, 200, 200),
    "role.create": (201, 201, 403, 403, 403, 403, 403),
    "role.update": (200, 200, 403, 403, 403, 403, 403),
    "role.delete": (204, 204, 403, 403, 403, 403, 403),
    "assignment.list": (200, 200, 200, 403, 403, 403, 403),
    "organization.events": (200, 200, 200, 403, 403, 403, 403),
    "assignment.create_organization": (201, 201, 403, 403, 403, 403, 403),
    "assignment.create_tenant": (201, 201, 403, 404, 201, 403, 403),
    "assignment.delete_tenant": (204, 204, 403, 404, 204, 403, 403),
}

ROLE_TABLE = [
    (actor, action, statuses[index])
    for action, statuses in EXPECTED.items()
    for index, actor in enumerate(ACTORS)
]


def test_role_table_covers_every_action():
    assert set(EXPECTED) == set(ACTIONS)


@pytest.mark.parametrize("actor, action, expected", ROLE_TABLE)
async def test_role_table(world, actor, action, expected):
    daemon, ids = world
    method, path, body = ACTIONS[action](ids)
    response = await daemon.call(method, path, token=ids.user(actor).token, json=body)
    if expected >= 400:
        assert_error(response, expected)
        assert expected in operation_for(method, path).errors
    else:
        assert response.status == expected, response.body


# Visibility


async def _tenant_names(daemon, token: str, query: str = "") -> tuple[int, list[str]]:
    response = await daemon.call("GET", f"/api/v1/tenants{query}", token=token)
    assert response.status == 200, response.body
    return response.body["total"], [item["name"] for item in response.body["items"]]


@pytest.mark.parametrize(
    "actor, visible",
    [
        ("org-admin", ["t1", "t2"]),
        ("org-manager", ["t1", "t2"]),
        ("org-viewer", ["t1", "t2"]),
        ("org-member", []),
        ("tenant-admin", ["t1"]),
        ("tenant-developer", ["t1"]),
        ("tenant-viewer", ["t1"]),
        ("outsider", []),
    ],
)
async def test_tenant_list_shows_visible_only(world, actor, visible):
    daemon, ids = world
    token = ids.user(actor).token
    query = f"?organization_id={ids.organization_id}"

    total, names = await _tenant_names(daemon, token, query)
    assert names == visible
    assert total == len(visible)

    total, names = await _tenant_names(daemon, token)
    assert names == visible
    assert total == len(visible)


async def test_tenant_list_total_ignores_hidden(world):
    daemon, ids = world
    token = ids.user("tenant-viewer").token
    total, names = await _tenant_names(daemon, token, "?limit=1&offset=1")
    assert total == 1
    assert names == []


async def test_organization_list_shows_own_only(world):
    daemon, ids = world
    other = await create_organization(daemon, "other")
    response = await daemon.call(
        "GET", "/api/v1/organizations", token=ids.user("org-member").token
    )
    assert [item["id"] for item in response.body["items"]] == [ids.organization_id]
    assert response.body["total"] == 1
    assert other not in str(response.body)

    outsider = await daemon.call(
        "GET", "/api/v1/organizations", token=ids.user("outsider").token
    )
    assert outsider.body["items"] == []
    assert outsider.body["total"] == 0


async def test_outsider_gets_404_not_403(world):
    daemon, ids = world
    token = ids.user("outsider").token
    for action in ("organization.read", "organization.update", "tenant.read"):
        method, path, body = ACTIONS[action](ids)
        response = await daemon.call(method, path, token=token, json=body)
        assert_error(response, 404)


# Another organization's ids


async def _build_other_organization(daemon) -> dict[str, str]:
    organization_id = await create_organization(daemon, "globex")
    tenant_id = await create_tenant(daemon, organization_id, "globex-prod")
    team = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/teams",
        json={"name": "globex-team"},
    )
    role = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/roles",
        json={"name": "globex-role", "scope": "tenant", "permissions": ["stack:read"]},
    )
    user = await create_user(daemon, "globex-user")
    assignment_id = await add_member(daemon, organization_id, user.id)
    return {
        "organization_id": organization_id,
        "tenant_id": tenant_id,
        "team_id": team.body["id"],
        "role_id": role.body["id"],
        "assignment_id": assignment_id,
        "user_id": user.id,
    }


def _without_id(error: dict, identifier: str) -> dict:
    return {**error, "message": error["message"].replace(identifier, "ID")}


async def test_other_organization_ids_in_paths_are_404(world):
    daemon, ids = world
    other = await _build_other_organization(daemon)
    token = ids.user("org-admin").token
    requests = [
        ("GET", "/api/v1/organizations/{organization_id}", "organization_id"),
        ("PATCH", "/api/v1/organizations/{organization_id}", "organization_id"),
        ("DELETE", "/api/v1/organizations/{organization_id}", "organization_id"),
        ("GET", "/api/v1/organizations/{organization_id}/members", "organization_id"),
        ("GET", "/api/v1/organizations/{organization_id}/teams", "organization_id"),
        ("GET", "/api/v1/organizations/{organization_id}/roles", "organization_id"),
        ("POST", "/api/v1/organizations/{organization_id}/tenants", "organization_id"),
        ("GET", "/api/v1/tenants/{tenant_id}", "tenant_id"),
        ("PATCH", "/api/v1/tenants/{tenant_id}", "tenant_id"),
        ("DELETE", "/api/v1/tenants/{tenant_id}", "tenant_id"),
        ("GET", "/api/v1/tenants/{tenant_id}/events", "tenant_id"),
        ("GET", "/api/v1/teams/{team_id}", "team_id"),
        ("DELETE", "/api/v1/teams/{team_id}", "team_id"),
        ("GET", "/api/v1/roles/{role_id}", "role_id"),
        ("DELETE", "/api/v1/roles/{role_id}", "role_id"),
        ("DELETE", "/api/v1/role_assignments/{assignment_id}", "assignment_id"),
        ("GET", "/api/v1/users/{user_id}", "user_id"),
    ]
    bodies = {"PATCH": {"description": "x"}, "POST": {"name": "sneaky"}}
    for method, template, name in requests:
        body = bodies.get(method)
        real = await daemon.call(
            method, template.format(**other), token=token, json=body
        )
        unknown_id = str(uuid.uuid4())
        unknown = await daemon.call(
            method, template.format(**{name: unknown_id}), token=token, json=body
        )
        error = assert_error(real, 404)
        assert _without_id(error, other[name]) == _without_id(
            assert_error(unknown, 404), unknown_id
        )
        assert "globex" not in error["message"]


async def test_other_organization_ids_in_bodies_are_404(world):
    daemon, ids = world
    other = await _build_other_organization(daemon)
    token = ids.user("org-admin").token
    path = f"/api/v1/organizations/{ids.organization_id}/role_assignments"
    plain = ids.user("plain").id
    bodies = [
        ({"role_id": other["role_id"], "user_id": plain}, "role_id"),
        ({"role_id": "organization-viewer", "team_id": other["team_id"]}, "team_id"),
        (
            {
                "role_id": "tenant-viewer",
                "user_id": plain,
                "tenant_id": other["tenant_id"],
            },
            "tenant_id",
        ),
    ]
    for body, name in bodies:
        real = await daemon.call("POST", path, token=token, json=body)
        unknown_id = str(uuid.uuid4())
        unknown = await daemon.call(
            "POST", path, token=token, json={**body, name: unknown_id}
        )
        error = assert_error(real, 404, field=name)
        assert _without_id(error, other[name]) == _without_id(
            assert_error(unknown, 404, field=name), unknown_id
        )
        assert "globex" not in error["message"]

    member = await daemon.call(
        "POST",
        f"/api/v1/organizations/{ids.organization_id}/members",
        token=token,
        json={"user_id": plain, "role_id": other["role_id"]},
    )
    assert_error(member, 404, field="role_id")


# Granting and taking away


async def _assignment_id(daemon, organization_id: str, user_id: str, role_id: str):
    response = await daemon.call(
        "GET",
        f"/api/v1/organizations/{organization_id}/role_assignments?user_id={user_id}",
    )
    for item in response.body["items"]:
        if item["role_id"] == role_id and item["tenant_id"] is None:
            return item["id"]
    raise AssertionError(f"user {user_id} has no {role_id} assignment")


async def test_manager_cannot_grant_admin(world):
    daemon, ids = world
    token = ids.user("org-manager").token
    plain = ids.user("plain").id
    organization = _organization(ids)

    assigned = await daemon.call(
        "POST",
        organization + "/role_assignments",
        token=token,
        json={"role_id": "organization-admin", "user_id": plain},
    )
    assert_error(assigned, 403)
    added = await daemon.call(
        "POST",
        organization + "/members",
        token=token,
        json={"user_id": ids.user("outsider").id, "role_id": "organization-admin"},
    )
    assert_error(added, 403)


async def test_manager_can_grant_manager_and_viewer(world):
    daemon, ids = world
    token = ids.user("org-manager").token
    for role_id in ("organization-manager", "organization-viewer"):
        response = await daemon.call(
            "POST",
            _organization(ids) + "/role_assignments",
            token=token,
            json={"role_id": role_id, "user_id": ids.user("plain").id},
        )
        assert response.status == 201, response.body


async def test_manager_cannot_remove_admin(world):
    daemon, ids = world
    token = ids.user("org-manager").token
    admin = ids.user("org-admin")
    assignment_id = await _assignment_id(
        daemon, ids.organization_id, admin.id, "organization-admin"
    )

    removed = await daemon.call(
        "DELETE", f"/api/v1/role_assignments/{assignment_id}", token=token
    )
    assert_error(removed, 403)
    member = await daemon.call(
        "DELETE", _organization(ids) + f"/members/{admin.id}", token=token
    )
    assert_error(member, 403)

    still = await daemon.call("GET", _organization(ids), token=admin.token)
    assert still.status == 200


async def test_manager_cannot_delete_organization(world):
    daemon, ids = world
    empty = await daemon.call(
        "POST", "/api/v1/organizations", json={"name": "empty-org"}
    )
    manager = ids.user("org-manager")
    await add_member(daemon, empty.body["id"], manager.id, "organization-manager")
    response = await daemon.call(
        "DELETE", f"/api/v1/organizations/{empty.body['id']}", token=manager.token
    )
    assert_error(response, 403)


async def test_custom_role_beyond_own_rights_refused(world):
    daemon, ids = world
    organization = _organization(ids)
    wide = await daemon.call(
        "POST",
        organization + "/roles",
        json={
            "name": "destroyer",
            "scope": "organization",
            "permissions": ["organization:delete"],
        },
    )
    tenant_wide = await daemon.call(
        "POST",
        organization + "/roles",
        json={"name": "remover", "scope": "tenant", "permissions": ["tenant:delete"]},
    )
    plain = ids.user("plain").id

    by_manager = await daemon.call(
        "POST",
        organization + "/role_assignments",
        token=ids.user("org-manager").token,
        json={"role_id": wide.body["id"], "user_id": plain},
    )
    assert_error(by_manager, 403)
    by_tenant_admin = await daemon.call(
        "POST",
        organization + "/role_assignments",
        token=ids.user("tenant-admin").token,
        json={
            "role_id": tenant_wide.body["id"],
            "user_id": plain,
            "tenant_id": ids.tenant("t1"),
        },
    )
    assert_error(by_tenant_admin, 403)
    by_tenant_admin_on_org = await daemon.call(
        "POST",
        organization + "/role_assignments",
        token=ids.user("tenant-admin").token,
        json={
            "role_id": "tenant-admin",
            "user_id": plain,
            "tenant_id": ids.tenant("t2"),
        },
    )
    assert_error(by_tenant_admin_on_org, 404, field="tenant_id")


async def test_role_change_beyond_own_rights_refused(world):
    daemon, ids = world
    response = await daemon.call(
        "PATCH",
        f"/api/v1/roles/{ids.role_id}",
        token=ids.user("org-manager").token,
        json={"permissions": ["team:read", "organization:delete"]},
    )
    assert_error(response, 403)
    role = await daemon.call("GET", f"/api/v1/roles/{ids.role_id}")
    assert role.body["permissions"] == ["team:read"]


async def test_last_admin_cannot_be_removed(world):
    daemon, ids = world
    founder = ids.user("org-admin")
    created = await create_organization(daemon, "solo", token=founder.token)
    assignment_id = await _assignment_id(
        daemon, created, founder.id, "organization-admin"
    )

    for token in (founder.token, "admin"):
        removed = await daemon.call(
            "DELETE", f"/api/v1/role_assignments/{assignment_id}", token=token
        )
        error = assert_error(removed, 409)
        assert "last Admin" in error["message"]
        left = await daemon.call(
            "DELETE",
            f"/api/v1/organizations/{created}/members/{founder.id}",
            token=token,
        )
        assert_error(left, 409)

    still = await daemon.call(
        "GET", f"/api/v1/organizations/{created}", token=founder.token
    )
    assert still.status == 200


async def test_last_admin_user_not_deleted(world):
    daemon, ids = world
    founder = ids.user("org-admin")
    created = await create_organization(daemon, "solo", token=founder.token)

    refused = await daemon.call("DELETE", f"/api/v1/users/{founder.id}")
    error = assert_error(refused, 409)
    assert "'solo'" in error["message"]
    assert "last Admin" in error["message"]

    await add_member(daemon, created, ids.user("plain").id, "organization-admin")
    deleted = await daemon.call("DELETE", f"/api/v1/users/{founder.id}")
    assert deleted.status == 204, deleted.body


async def test_second_admin_can_be_removed(world):
    daemon, ids = world
    # The superuser created "acme", so "acme" has two Admins.
    admin = ids.user("org-admin")
    assignment_id = await _assignment_id(
        daemon, ids.organization_id, admin.id, "organization-admin"
    )
    removed = await daemon.call(
        "DELETE", f"/api/v1/role_assignments/{assignment_id}", token=admin.token
    )
    assert removed.status == 204, removed.body


# Teams


async def test_team_grant_visible_until_removed(world):
    daemon, ids = world
    member = ids.user("org-member")
    t1 = f"/api/v1/tenants/{ids.tenant('t1')}"
    await assign_role(
        daemon,
        ids.organization_id,
        "tenant-developer",
        team_id=ids.team_id,
        tenant_id=ids.tenant("t1"),
    )
    assert_error(await daemon.call("GET", t1, token=member.token), 404)

    joined = await daemon.call(
        "POST", f"/api/v1/teams/{ids.team_id}/members", json={"user_id": member.id}
    )
    assert joined.status == 204, joined.body
    seen = await daemon.call("GET", t1, token=member.token)
    assert seen.status == 200
    assert await _tenant_names(daemon, member.token) == (1, ["t1"])

    left = await daemon.call(
        "DELETE", f"/api/v1/teams/{ids.team_id}/members/{member.id}"
    )
    assert left.status == 204, left.body
    assert_error(await daemon.call("GET", t1, token=member.token), 404)
    assert await _tenant_names(daemon, member.token) == (0, [])


async def test_rights_are_union_of_user_and_team(world):
    daemon, ids = world
    viewer = ids.user("tenant-viewer")
    t1 = f"/api/v1/tenants/{ids.tenant('t1')}"
    change = {"description": "by the viewer"}
    assert_error(await daemon.call("PATCH", t1, token=viewer.token, json=change), 403)

    await assign_role(
        daemon,
        ids.organization_id,
        "tenant-admin",
        team_id=ids.team_id,
        tenant_id=ids.tenant("t1"),
    )
    joined = await daemon.call(
        "POST", f"/api/v1/teams/{ids.team_id}/members", json={"user_id": viewer.id}
    )
    assert joined.status == 204, joined.body
    changed = await daemon.call("PATCH", t1, token=viewer.token, json=change)
    assert changed.status == 202, changed.body
    assert changed.body["description"] == "by the viewer"


async def test_team_member_add_needs_team_rights(world):
    daemon, ids = world
    await assign_role(
        daemon, ids.organization_id, "organization-admin", team_id=ids.team_id
    )
    response = await daemon.call(
        "POST",
        f"/api/v1/teams/{ids.team_id}/members",
        token=ids.user("org-manager").token,
        json={"user_id": ids.user("plain").id},
    )
    assert_error(response, 403)


async def test_custom_tenant_role_shows_tenant(world):
    daemon, ids = world
    plain = ids.user("plain")
    role = await daemon.call(
        "POST",
        _organization(ids) + "/roles",
        json={"name": "stacker", "scope": "tenant", "permissions": ["stack:read"]},
    )
    assert role.status == 201, role.body
    assert await _tenant_names(daemon, plain.token) == (0, [])

    await assign_role(
        daemon,
        ids.organization_id,
        role.body["id"],
        user_id=plain.id,
        tenant_id=ids.tenant("t1"),
    )
    assert await _tenant_names(daemon, plain.token) == (1, ["t1"])
    seen = await daemon.call(
        "GET", f"/api/v1/tenants/{ids.tenant('t1')}", token=plain.token
    )
    assert seen.status == 200
    assert_error(
        await daemon.call(
            "GET", f"/api/v1/tenants/{ids.tenant('t2')}", token=plain.token
        ),
        404,
    )
    changed = await daemon.call(
        "PATCH",
        f"/api/v1/tenants/{ids.tenant('t1')}",
        token=plain.token,
        json={"description": "x"},
    )
    assert_error(changed, 403)


async def test_custom_organization_role_reads_organization(world):
    daemon, ids = world
    outsider = ids.user("outsider")
    await add_member(daemon, ids.organization_id, outsider.id, ids.role_id)
    response = await daemon.call("GET", _organization(ids), token=outsider.token)
    assert response.status == 200, response.body
    teams = await daemon.call(
        "GET", _organization(ids) + "/teams", token=outsider.token
    )
    assert teams.status == 200
    members = await daemon.call(
        "GET", _organization(ids) + "/members", token=outsider.token
    )
    assert_error(members, 403)


async def test_last_own_role_removal_leaves_teams(world):
    daemon, ids = world
    plain = ids.user("plain")
    t1 = f"/api/v1/tenants/{ids.tenant('t1')}"
    await assign_role(
        daemon,
        ids.organization_id,
        "tenant-developer",
        team_id=ids.team_id,
        tenant_id=ids.tenant("t1"),
    )
    joined = await daemon.call(
        "POST", f"/api/v1/teams/{ids.team_id}/members", json={"user_id": plain.id}
    )
    assert joined.status == 204
    assert (await daemon.call("GET", t1, token=plain.token)).status == 200

    membership = await _assignment_id(
        daemon, ids.organization_id, plain.id, "organization-member"
    )
    removed = await daemon.call("DELETE", f"/api/v1/role_assignments/{membership}")
    assert removed.status == 204, removed.body

    team_members = await daemon.call("GET", f"/api/v1/teams/{ids.team_id}/members")
    assert team_members.body["items"] == []
    assert_error(await daemon.call("GET", t1, token=plain.token), 404)


async def test_manager_cannot_remove_team_admin(world):
    daemon, ids = world
    plain = ids.user("plain")
    await assign_role(
        daemon, ids.organization_id, "organization-admin", team_id=ids.team_id
    )
    joined = await daemon.call(
        "POST", f"/api/v1/teams/{ids.team_id}/members", json={"user_id": plain.id}
    )
    assert joined.status == 204
    token = ids.user("org-manager").token
    membership = await _assignment_id(
        daemon, ids.organization_id, plain.id, "organization-member"
    )

    removed = await daemon.call(
        "DELETE", f"/api/v1/role_assignments/{membership}", token=token
    )
    assert_error(removed, 403)
    member = await daemon.call(
        "DELETE", _organization(ids) + f"/members/{plain.id}", token=token
    )
    assert_error(member, 403)

    team_members = await daemon.call("GET", f"/api/v1/teams/{ids.team_id}/members")
    assert [item["username"] for item in team_members.body["items"]] == ["plain"]
    assignments = await daemon.call(
        "GET", _organization(ids) + f"/role_assignments?user_id={plain.id}"
    )
    assert assignments.body["total"] == 1
