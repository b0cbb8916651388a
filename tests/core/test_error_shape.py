"""Every route's error paths answer one JSON error shape, and nothing else.

The walk covers every operation in ``routing.OPERATIONS``: no credentials,
unknown ids in the path and, where a body exists, malformed JSON, unknown
fields, wrong types and bodies over ``max_body_size``. Each status seen must
also be one the operation declares in the OpenAPI document.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.core.helpers import (
    add_member,
    assert_error,
    build_template,
    copy_template,
    create_organization,
    create_tenant,
    create_user,
    running_daemon,
    state_snapshot,
)
from zenpro_local.api import models, sessions
from zenpro_local.api.routing import OPERATIONS, Operation

PATH_PARAMETER = re.compile(r"{(\w+)}")
MAX_BODY_SIZE = 4096

# A body each request model accepts, so that one changed field is the only
# problem in a request. A new request model needs an entry here.
VALID_BODIES: dict[type, dict] = {
    models.OrganizationCreate: {"name": "second-org"},
    models.OrganizationUpdate: {"description": "changed"},
    models.UserCreate: {"username": "second-user"},
    models.UserUpdate: {"full_name": "Changed Name"},
    models.ApiKeyCreate: {"note": "walk"},
    models.MemberAdd: {"username": "admin"},
    models.TeamCreate: {"name": "second-team"},
    models.TeamUpdate: {"description": "changed"},
    models.TeamMemberAdd: {"user_id": "not-checked"},
    models.RoleCreate: {
        "name": "second-role",
        "scope": "tenant",
        "permissions": ["stack:read"],
    },
    models.RoleUpdate: {"description": "changed"},
    models.RoleAssignmentCreate: {"role_id": "organization-viewer", "user_id": "x"},
    models.TenantCreate: {"name": "second-tenant"},
    models.TenantUpdate: {"description": "changed"},
    sessions.SessionCreate: {"username": "walker", "password": "not-the-password"},
}


async def _build_world(daemon) -> dict[str, str]:
    """Create one object of each kind; return the id for each path parameter."""
    organization_id = await create_organization(daemon, "walk-org")
    tenant_id = await create_tenant(daemon, organization_id, "walk-tenant")
    user = await create_user(daemon, "walker")
    assignment_id = await add_member(daemon, organization_id, user.id)

    team = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/teams",
        json={"name": "walkers"},
    )
    assert team.status == 201, team.body
    joined = await daemon.call(
        "POST", f"/api/v1/teams/{team.body['id']}/members", json={"user_id": user.id}
    )
    assert joined.status == 204, joined.body
    role = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/roles",
        json={"name": "reader", "scope": "tenant", "permissions": ["stack:read"]},
    )
    assert role.status == 201, role.body
    keys = await daemon.call("GET", f"/api/v1/users/{user.id}/api_keys")

    return {
        "organization_id": organization_id,
        "tenant_id": tenant_id,
        "team_id": team.body["id"],
        "role_id": role.body["id"],
        "user_id": user.id,
        "key_id": keys.body["items"][0]["id"],
        "assignment_id": assignment_id,
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return build_template(tmp_path_factory.mktemp("walk"), _build_world)


def _path(operation: Operation, ids: dict[str, str]) -> str:
    return PATH_PARAMETER.sub(lambda match: ids[match.group(1)], operation.path)


def _operation_id(operation: Operation) -> str:
    return f"{operation.method} {operation.path}"


def _valid_body(operation: Operation) -> dict | None:
    if operation.body is None:
        return None
    assert (
        operation.body in VALID_BODIES
    ), f"add a valid body for {operation.body.__name__} to VALID_BODIES"
    return dict(VALID_BODIES[operation.body])


def _check_declared(operation: Operation, status: int) -> None:
    assert status in operation.errors, (
        f"{_operation_id(operation)} answered {status}, which its route does "
        f"not declare (declared: {operation.errors})"
    )


@pytest.mark.parametrize("operation", OPERATIONS, ids=_operation_id)
async def test_route_error_paths(operation, template, tmp_path):
    data_dir = copy_template(template[0], tmp_path)
    ids = template[1]
    body = _valid_body(operation)

    async with running_daemon(data_dir, max_body_size=MAX_BODY_SIZE) as daemon:
        before = state_snapshot(data_dir)
        if not operation.public:
            await _check_unauthenticated(daemon, operation, ids, body)
        await _check_unknown_ids(daemon, operation, ids, body)
        if body is not None:
            await _check_bad_bodies(daemon, operation, ids, body)

    assert state_snapshot(data_dir) == before


async def _check_unauthenticated(daemon, operation, ids, body) -> None:
    path = _path(operation, ids)
    for token in (None, "not-an-api-key"):
        response = await daemon.call(operation.method, path, token=token, json=body)
        assert_error(response, 401, field=None)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        _check_declared(operation, 401)

    basic = {"Authorization": "Basic YWRtaW46YWRtaW4="}
    response = await daemon.call(
        operation.method, path, token=None, json=body, headers=basic
    )
    assert_error(response, 401, field=None)


async def _check_unknown_ids(daemon, operation, ids, body) -> None:
    for name in PATH_PARAMETER.findall(operation.path):
        unknown = str(uuid.uuid4())
        path = _path(operation, {**ids, name: unknown})
        response = await daemon.call(operation.method, path, json=body)
        error = assert_error(response, 404, field=None)
        assert error["code"] == "not_found"
        assert unknown in error["message"]
        _check_declared(operation, 404)


async def _check_bad_bodies(daemon, operation, ids, body) -> None:
    path = _path(operation, ids)
    json_header = {"Content-Type": "application/json"}

    malformed = await daemon.call(
        operation.method, path, data='{"name": ', headers=json_header
    )
    assert_error(malformed, 400, field=None)
    assert malformed.body["error"]["code"] == "bad_request"
    _check_declared(operation, 400)

    empty = await daemon.call(operation.method, path, data="", headers=json_header)
    assert_error(empty, 400, field=None)

    array = await daemon.call(operation.method, path, json=[body])
    assert_error(array, 422, field=None)
    _check_declared(operation, 422)

    unknown = await daemon.call(
        operation.method, path, json={**body, "no_such_field": 1}
    )
    error = assert_error(unknown, 422, field="no_such_field")
    assert error["code"] == "validation_error"

    first_field = next(iter(operation.body.model_fields))
    wrong_type = await daemon.call(
        operation.method, path, json={**body, first_field: {"an": "object"}}
    )
    assert_error(wrong_type, 422, field=first_field)

    padding = "x" * (2 * MAX_BODY_SIZE)
    oversized = await daemon.call(
        operation.method,
        path,
        data=json.dumps({**body, "description": padding}),
        headers=json_header,
    )
    error = assert_error(oversized, 413, field=None)
    assert error["code"] == "payload_too_large"
    assert str(MAX_BODY_SIZE) in error["message"]
    _check_declared(operation, 413)


async def test_hostile_json_is_400(daemon):
    json_header = {"Content-Type": "application/json"}
    for raw in (
        "[" * 100_000,
        '{"name": ' + "[" * 50_000 + "]" * 50_000 + "}",
        '{"name": ' + "1" * 5000 + "}",
        b'{"name": "\xff"}',
        '{"name": NaN, "name": Infinity',
    ):
        response = await daemon.call(
            "POST", "/api/v1/organizations", data=raw, headers=json_header
        )
        error = assert_error(response, 400, field=None)
        assert error["code"] == "bad_request"
        assert error["message"].startswith("malformed JSON")


async def test_unknown_route_is_404(daemon):
    for path, token in (("/api/v1/no-such-thing", "admin"), ("/no-such-page", None)):
        response = await daemon.call("GET", path, token=token)
        error = assert_error(response, 404, field=None)
        assert error["code"] == "not_found"
        assert path in error["message"]


async def test_unknown_api_route_needs_credentials(daemon):
    response = await daemon.call("GET", "/api/v1/no-such-thing", token=None)
    assert_error(response, 401, field=None)


def _methods_by_path() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for operation in OPERATIONS:
        found.setdefault(operation.path, set()).add(operation.method)
    return found


@pytest.mark.parametrize("path, methods", sorted(_methods_by_path().items()))
async def test_wrong_method_is_405(daemon, path, methods):
    concrete = PATH_PARAMETER.sub(lambda match: str(uuid.uuid4()), path)
    response = await daemon.call("PUT", concrete, json={})
    error = assert_error(response, 405, field=None)
    assert error["code"] == "method_not_allowed"
    allowed = set(response.headers["Allow"].split(","))
    assert allowed == methods
