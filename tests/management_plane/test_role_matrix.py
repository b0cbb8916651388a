"""Roles given in the daemon decide what users may do inside a tenant.

Each user calls the tenant's REST API through Caddy with its daemon API
key as bearer token; the tenant asks the management plane who the key
belongs to and what it may do.
"""

from __future__ import annotations

import time

from tests.management_plane.conftest import Plane, add_member


class TenantClient:
    def __init__(self, plane: Plane, url: str, key: str):
        self.plane, self.url, self.key = plane, url, key

    async def call(self, method: str, path: str, json=None) -> tuple[int, object]:
        async with self.plane.session.request(
            method,
            self.url + path,
            json=json,
            headers={"Authorization": f"Bearer {self.key}"},
            ssl=self.plane.ssl_context(),
        ) as response:
            return response.status, await response.json(content_type=None)


async def _stack_body(admin: TenantClient, name: str) -> dict:
    status, components = await admin.call("GET", "/api/v1/components?size=100")
    assert status == 200, components
    by_type: dict[str, list[str]] = {}
    for component in components["items"]:
        by_type.setdefault(component["body"]["type"], []).append(component["id"])
    return {
        "name": name,
        "components": {
            "orchestrator": by_type["orchestrator"][:1],
            "artifact_store": by_type["artifact_store"][:1],
        },
    }


async def test_role_matrix_and_revocation(plane: Plane):
    organization = await plane.admin("POST", "/api/v1/organizations", {"name": "acme"})
    org_id = organization["id"]
    tenant = await plane.admin(
        "POST",
        f"/api/v1/organizations/{org_id}/tenants",
        {"name": "matrix", "auth_mode": "organization"},
    )
    tenant_id = tenant["id"]
    role = await plane.admin(
        "POST",
        f"/api/v1/organizations/{org_id}/roles",
        {"name": "stacker", "scope": "tenant",
         "permissions": ["stack:create", "stack:read"]},
    )
    boss = await add_member(plane, org_id, "boss", "organization-admin")
    viewer = await add_member(plane, org_id, "vera", "tenant-viewer", tenant_id)
    developer = await add_member(plane, org_id, "dev", "tenant-developer", tenant_id)
    member = await add_member(plane, org_id, "mo", None)
    stacker = await add_member(plane, org_id, "stacy", role["id"], tenant_id)
    tenant = await plane.wait_available(tenant_id)

    def client(who) -> TenantClient:
        return TenantClient(plane, tenant["url"], who.key)

    # Organization Admin: everything, including projects besides the
    # "default" that the daemon made.
    status, body = await client(boss).call("POST", "/api/v1/projects",
                                           {"name": "research"})
    assert status == 200, body
    status, body = await client(boss).call(
        "POST", "/api/v1/stacks", await _stack_body(client(boss), "boss-stack"))
    assert status == 200, body

    # Viewer reads but cannot create a stack.
    status, body = await client(viewer).call("GET", "/api/v1/pipelines?project=default")
    assert status == 200, body
    status, body = await client(viewer).call("GET", "/api/v1/runs?project=default")
    assert status == 200, body
    status, body = await client(viewer).call(
        "POST", "/api/v1/stacks", await _stack_body(client(boss), "viewer-stack"))
    assert status == 403, body

    # Developer creates a stack.
    status, body = await client(developer).call(
        "POST", "/api/v1/stacks", await _stack_body(client(boss), "dev-stack"))
    assert status == 200, body

    # Member without a tenant role: refused, and the tenant is not listed.
    status, body = await client(member).call("GET", "/api/v1/pipelines?project=default")
    assert status == 401, body
    status, listed = await plane.mp("GET", "/workspaces?member_only=True", member.key)
    assert status == 200, listed
    assert tenant_id not in [item["id"] for item in listed]
    status, listed = await plane.mp("GET", "/workspaces", developer.key)
    assert tenant_id in [item["id"] for item in listed]

    # Custom role stack:create + stack:read: exactly that.
    status, body = await client(stacker).call(
        "POST", "/api/v1/stacks", await _stack_body(client(boss), "custom-stack"))
    assert status == 200, body
    status, body = await client(stacker).call("GET", "/api/v1/stacks")
    assert status == 200, body
    status, body = await client(stacker).call(
        "POST", "/api/v1/components",
        {"name": "extra", "type": "orchestrator", "flavor": "local",
         "configuration": {}},
    )
    assert status == 403, body

    # Revoking the viewer's API key counts on the next request.
    await plane.admin("DELETE", f"/api/v1/users/{viewer.id}/api_keys/{viewer.key_id}")
    revoked_at = time.monotonic()
    status, body = await client(viewer).call("GET", "/api/v1/pipelines?project=default")
    delay = time.monotonic() - revoked_at
    assert status == 401, body
    print(f"API key revocation refused after {delay * 1000:.0f} ms")

    # Taking the developer's role away counts on the next request.
    assignments = await plane.admin(
        "GET", f"/api/v1/organizations/{org_id}/role_assignments?limit=100")
    dev_assignment = next(
        item for item in assignments["items"]
        if item.get("user_id") == developer.id and item["role_id"] == "tenant-developer")
    late_stack = await _stack_body(client(boss), "late-stack")
    await plane.admin(
        "DELETE", f"/api/v1/role_assignments/{dev_assignment['id']}")
    revoked_at = time.monotonic()
    status, body = await client(developer).call("POST", "/api/v1/stacks", late_stack)
    delay = time.monotonic() - revoked_at
    assert status in (401, 403), body
    print(f"role removal refused after {delay * 1000:.0f} ms")

    # A deactivated user is refused.
    await plane.admin("PATCH", f"/api/v1/users/{stacker.id}", {"is_active": False})
    status, body = await client(stacker).call("GET", "/api/v1/stacks")
    assert status == 401, body
