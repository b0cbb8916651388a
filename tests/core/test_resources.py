"""The admin API's resources and REST conventions, as a client sees them.

Creates return 201 with the object, background work 202, deletes 204 with
no body, and lists ``{"items", "total", "offset", "limit"}``.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3

from openapi_spec_validator import validate

from tests.conftest import make_settings
from tests.core.helpers import (
    add_member,
    assert_error,
    create_organization,
    create_tenant,
    create_user,
)
from zenpro_local.api import create_app
from zenpro_local.api.context import Context
from zenpro_local.api.routing import OPERATIONS
from zenpro_local.management_plane.routing import ROUTES
from zenpro_local.store import Store

PAGE_KEYS = {"items", "total", "offset", "limit"}


def _assert_deleted(response) -> None:
    assert response.status == 204, response.body
    assert response.body is None


# Organizations


async def test_organization_lifecycle(daemon):
    created = await daemon.call(
        "POST", "/api/v1/organizations", json={"name": "acme", "description": "A"}
    )
    assert created.status == 201, created.body
    organization = created.body
    assert set(organization) == {"id", "name", "description", "created", "updated"}
    assert organization["name"] == "acme"
    assert organization["created"] == organization["updated"]
    path = f"/api/v1/organizations/{organization['id']}"

    listed = await daemon.call("GET", "/api/v1/organizations")
    assert set(listed.body) == PAGE_KEYS
    assert listed.body["items"] == [organization]
    assert listed.body["total"] == 1

    assert (await daemon.call("GET", path)).body == organization

    renamed = await daemon.call("PATCH", path, json={"name": "acme-corp"})
    assert renamed.status == 200
    assert renamed.body["name"] == "acme-corp"
    assert renamed.body["description"] == "A"
    assert renamed.body["updated"] > organization["updated"]
    assert (await daemon.call("GET", path)).body == renamed.body

    unchanged = await daemon.call("PATCH", path, json={})
    assert unchanged.body == renamed.body

    _assert_deleted(await daemon.call("DELETE", path))
    assert_error(await daemon.call("GET", path), 404)
    assert (await daemon.call("GET", "/api/v1/organizations")).body["total"] == 0


async def test_creator_becomes_organization_admin(daemon):
    bob = await create_user(daemon, "bob")
    organization_id = await create_organization(daemon, "bobs", token=bob.token)
    members = await daemon.call(
        "GET", f"/api/v1/organizations/{organization_id}/members", token=bob.token
    )
    assert members.status == 200
    [member] = members.body["items"]
    assert member["user"]["username"] == "bob"
    assert [role["id"] for role in member["roles"]] == ["organization-admin"]


async def test_organization_delete_needs_no_tenants(daemon):
    organization_id = await create_organization(daemon, "acme")
    await create_tenant(daemon, organization_id, "prod")
    refused = await daemon.call("DELETE", f"/api/v1/organizations/{organization_id}")
    error = assert_error(refused, 409)
    assert "1 tenant" in error["message"]
    still = await daemon.call("GET", f"/api/v1/organizations/{organization_id}")
    assert still.status == 200


# Tenants


async def test_tenant_lifecycle(daemon):
    organization_id = await create_organization(daemon, "acme")
    other_id = await create_organization(daemon, "globex")
    await create_tenant(daemon, other_id, "globex-prod")

    created = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/tenants",
        json={"name": "prod", "description": "Production"},
    )
    assert created.status == 202, created.body
    tenant = created.body
    assert tenant["name"] == "prod"
    assert tenant["organization_id"] == organization_id
    assert tenant["status"] == "pending"
    assert tenant["url"] == "https://prod.zenml.localhost:8443"
    assert tenant["zenml_version"] == "0.98.0"
    assert tenant["deleted"] is None
    path = f"/api/v1/tenants/{tenant['id']}"

    listed = await daemon.call(
        "GET", f"/api/v1/tenants?organization_id={organization_id}"
    )
    assert set(listed.body) == PAGE_KEYS
    assert [item["id"] for item in listed.body["items"]] == [tenant["id"]]
    assert listed.body["total"] == 1
    everything = await daemon.call("GET", "/api/v1/tenants")
    assert everything.body["total"] == 2

    shown = await daemon.call("GET", path)
    assert shown.body == tenant

    changed = await daemon.call("PATCH", path, json={"description": "Live"})
    assert changed.status == 202
    assert changed.body["description"] == "Live"

    events = await daemon.call("GET", path + "/events")
    actions = [event["action"] for event in events.body["items"]]
    assert actions[:2] == ["created", "updated"]

    deleted = await daemon.call("DELETE", path)
    assert deleted.status == 202
    assert deleted.body["desired_state"] == "deleted"
    assert deleted.body["status"] == "deleting"


async def test_tenant_version_from_request(daemon):
    organization_id = await create_organization(daemon, "acme")
    created = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/tenants",
        json={"name": "prod", "zenml_version": "0.97.1"},
    )
    assert created.status == 202
    assert created.body["zenml_version"] == "0.97.1"


# Users


async def test_user_lifecycle(daemon):
    created = await daemon.call(
        "POST",
        "/api/v1/users",
        json={
            "username": "bob",
            "email": "bob@example.test",
            "full_name": "Bob",
            "password": "correct horse battery",
        },
    )
    assert created.status == 201, created.body
    user = created.body
    assert set(user) == {
        "id",
        "username",
        "email",
        "full_name",
        "is_superuser",
        "is_active",
        "created",
        "updated",
    }
    path = f"/api/v1/users/{user['id']}"

    with contextlib.closing(sqlite3.connect(daemon.data_dir / "state.db")) as db:
        [stored] = db.execute(
            "SELECT password_hash FROM users WHERE id = ?", [user["id"]]
        ).fetchone()
    assert stored.startswith("scrypt$")
    assert "correct horse battery" not in stored

    listed = await daemon.call("GET", "/api/v1/users")
    assert sorted(item["username"] for item in listed.body["items"]) == ["admin", "bob"]
    assert (await daemon.call("GET", path)).body == user

    changed = await daemon.call("PATCH", path, json={"full_name": "Robert"})
    assert changed.status == 200
    assert changed.body["full_name"] == "Robert"

    _assert_deleted(await daemon.call("DELETE", path))
    assert_error(await daemon.call("GET", path), 404)


async def test_users_me_and_self_service(daemon):
    bob = await create_user(daemon, "bob")
    me = await daemon.call("GET", "/api/v1/users/me", token=bob.token)
    assert me.body["id"] == bob.id

    renamed = await daemon.call(
        "PATCH", "/api/v1/users/me", token=bob.token, json={"full_name": "Bob B"}
    )
    assert renamed.status == 200
    promoted = await daemon.call(
        "PATCH", "/api/v1/users/me", token=bob.token, json={"is_superuser": True}
    )
    assert_error(promoted, 403)
    created = await daemon.call(
        "POST", "/api/v1/users", token=bob.token, json={"username": "eve"}
    )
    assert_error(created, 403)
    listed = await daemon.call("GET", "/api/v1/users", token=bob.token)
    assert [item["username"] for item in listed.body["items"]] == ["bob"]


async def test_superuser_cannot_remove_itself(daemon):
    deleted = await daemon.call("DELETE", "/api/v1/users/me")
    assert_error(deleted, 422)
    demoted = await daemon.call(
        "PATCH", "/api/v1/users/me", json={"is_superuser": False}
    )
    assert_error(demoted, 422)


# Members and teams


async def test_member_lifecycle(daemon):
    organization_id = await create_organization(daemon, "acme")
    bob = await create_user(daemon, "bob")
    members_path = f"/api/v1/organizations/{organization_id}/members"

    added = await daemon.call(
        "POST", members_path, json={"username": "bob", "role_id": "organization-viewer"}
    )
    assert added.status == 201, added.body
    assert added.body["role_id"] == "organization-viewer"
    assert added.body["user_id"] == bob.id

    listed = await daemon.call("GET", members_path)
    assert listed.body["total"] == 2
    by_name = {item["user"]["username"]: item for item in listed.body["items"]}
    assert [role["name"] for role in by_name["bob"]["roles"]] == ["Viewer"]

    _assert_deleted(await daemon.call("DELETE", f"{members_path}/{bob.id}"))
    listed = await daemon.call("GET", members_path)
    assert [item["user"]["username"] for item in listed.body["items"]] == ["admin"]
    assert_error(await daemon.call("DELETE", f"{members_path}/{bob.id}"), 404)


async def test_team_lifecycle(daemon):
    organization_id = await create_organization(daemon, "acme")
    bob = await create_user(daemon, "bob")
    await add_member(daemon, organization_id, bob.id)
    outsider = await create_user(daemon, "eve")

    created = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/teams",
        json={"name": "crew", "description": "Ops"},
    )
    assert created.status == 201, created.body
    team = created.body
    assert team["member_count"] == 0
    path = f"/api/v1/teams/{team['id']}"

    joined = await daemon.call("POST", path + "/members", json={"user_id": bob.id})
    assert joined.status == 204
    refused = await daemon.call(
        "POST", path + "/members", json={"user_id": outsider.id}
    )
    assert_error(refused, 422, field="user_id")

    members = await daemon.call("GET", path + "/members")
    assert [item["username"] for item in members.body["items"]] == ["bob"]
    assert members.body["total"] == 1
    assert (await daemon.call("GET", path)).body["member_count"] == 1

    renamed = await daemon.call("PATCH", path, json={"name": "crew-2"})
    assert renamed.body["name"] == "crew-2"
    teams = await daemon.call("GET", f"/api/v1/organizations/{organization_id}/teams")
    assert [item["name"] for item in teams.body["items"]] == ["crew-2"]

    _assert_deleted(await daemon.call("DELETE", f"{path}/members/{bob.id}"))
    assert (await daemon.call("GET", path)).body["member_count"] == 0
    _assert_deleted(await daemon.call("DELETE", path))
    assert_error(await daemon.call("GET", path), 404)


# Roles and role assignments


async def test_predefined_roles_listed(daemon):
    organization_id = await create_organization(daemon, "acme")
    listed = await daemon.call("GET", f"/api/v1/organizations/{organization_id}/roles")
    predefined = {
        (item["scope"], item["name"])
        for item in listed.body["items"]
        if item["predefined"]
    }
    assert predefined == {
        ("organization", "Admin"),
        ("organization", "Manager"),
        ("organization", "Viewer"),
        ("organization", "Member"),
        ("tenant", "Admin"),
        ("tenant", "Developer"),
        ("tenant", "Viewer"),
    }
    assert listed.body["total"] == 7


async def test_custom_role_lifecycle(daemon):
    organization_id = await create_organization(daemon, "acme")
    created = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/roles",
        json={
            "name": "Pipeline runner",
            "scope": "tenant",
            "permissions": ["pipeline_run:create", "pipeline:read", "pipeline:read"],
        },
    )
    assert created.status == 201, created.body
    role = created.body
    assert role["predefined"] is False
    assert role["organization_id"] == organization_id
    assert role["permissions"] == ["pipeline:read", "pipeline_run:create"]
    path = f"/api/v1/roles/{role['id']}"

    changed = await daemon.call("PATCH", path, json={"permissions": ["stack:*"]})
    assert changed.status == 200, changed.body
    assert changed.body["permissions"] == ["stack:*"]
    assert (await daemon.call("GET", path)).body["permissions"] == ["stack:*"]

    _assert_deleted(await daemon.call("DELETE", path))
    assert_error(await daemon.call("GET", path), 404)


async def test_role_assignment_lifecycle(daemon):
    organization_id = await create_organization(daemon, "acme")
    tenant_id = await create_tenant(daemon, organization_id, "prod")
    bob = await create_user(daemon, "bob")
    await add_member(daemon, organization_id, bob.id)
    path = f"/api/v1/organizations/{organization_id}/role_assignments"
    body = {"role_id": "tenant-developer", "user_id": bob.id, "tenant_id": tenant_id}

    created = await daemon.call("POST", path, json=body)
    assert created.status == 201, created.body
    assert created.body["role_name"] == "Developer"
    assert created.body["tenant_id"] == tenant_id
    assert_error(await daemon.call("POST", path, json=body), 409)

    wrong_scope = await daemon.call(
        "POST", path, json={"role_id": "tenant-developer", "user_id": bob.id}
    )
    assert_error(wrong_scope, 422, field="tenant_id")

    mine = await daemon.call("GET", f"{path}?user_id={bob.id}")
    assert [item["role_id"] for item in mine.body["items"]] == [
        "organization-member",
        "tenant-developer",
    ]
    on_tenant = await daemon.call("GET", f"{path}?tenant_id={tenant_id}")
    assert [item["id"] for item in on_tenant.body["items"]] == [created.body["id"]]

    assignment = f"/api/v1/role_assignments/{created.body['id']}"
    _assert_deleted(await daemon.call("DELETE", assignment))
    assert_error(await daemon.call("DELETE", assignment), 404)
    seen = await daemon.call("GET", f"/api/v1/tenants/{tenant_id}", token=bob.token)
    assert_error(seen, 404)


# Pagination


async def test_pagination_offset_limit_total(daemon):
    names = [f"org-{number}" for number in range(5)]
    for name in names:
        await create_organization(daemon, name)

    seen = []
    for offset in range(0, 6, 2):
        page = await daemon.call(
            "GET", f"/api/v1/organizations?offset={offset}&limit=2"
        )
        assert page.status == 200
        assert page.body["total"] == 5
        assert page.body["offset"] == offset
        assert page.body["limit"] == 2
        seen.extend(item["name"] for item in page.body["items"])
    assert seen == names

    beyond = await daemon.call("GET", "/api/v1/organizations?offset=10")
    assert beyond.body["items"] == []
    assert beyond.body["total"] == 5
    default = await daemon.call("GET", "/api/v1/organizations")
    assert default.body["limit"] == 50
    assert default.body["offset"] == 0


# OpenAPI and docs


async def test_openapi_document_valid(daemon):
    response = await daemon.call("GET", "/api/v1/openapi.json", token=None)
    assert response.status == 200
    document = response.body
    assert document["openapi"].startswith("3.")
    validate(document)


async def test_openapi_describes_every_route(daemon):
    document = (await daemon.call("GET", "/api/v1/openapi.json", token=None)).body
    described = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    declared = {(operation.method, operation.path) for operation in OPERATIONS}
    assert described == declared

    for operation in OPERATIONS:
        entry = document["paths"][operation.path][operation.method.lower()]
        assert entry["summary"], operation.path
        assert str(operation.status) in entry["responses"]
        for status in operation.errors:
            assert str(status) in entry["responses"]
        if operation.body is not None:
            assert "requestBody" in entry
        names = re.findall(r"{(\w+)}", operation.path)
        path_parameters = [p["name"] for p in entry["parameters"] if p["in"] == "path"]
        assert path_parameters == names


def test_every_served_route_declared(tmp_path):
    settings = make_settings(tmp_path / "data")
    store = Store.open(tmp_path / "state.db")
    try:
        app = create_app(Context(settings=settings, store=store))
        served = {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if not route.resource.canonical.startswith("/docs/assets")
        }
    finally:
        store.close()
    declared = {(operation.method, operation.path) for operation in OPERATIONS}
    # aiohttp's canonical path drops a parameter's pattern: {rest:.+} -> {rest}.
    management_plane = {
        (method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)) for method, path, _ in ROUTES
    }
    assert served == declared | management_plane
    assert not declared & management_plane


async def test_docs_page_loads_assets(daemon):
    page = await daemon.call("GET", "/docs", token=None)
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    for asset in re.findall(r'(?:src|href)="(/docs/[^"]+)"', page.body):
        response = await daemon.call("GET", asset, token=None)
        assert response.status == 200, asset
        assert len(response.body) > 100, asset
    init = await daemon.call("GET", "/docs/swagger-init.js", token=None)
    assert "/api/v1/openapi.json" in init.body
