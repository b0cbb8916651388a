"""Helpers of the core tests: the error shape, state snapshots, test users."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp.test_utils import TestServer

from tests.conftest import Daemon, Response, make_settings
from zenpro_local.api.routing import OPERATIONS, Operation
from zenpro_local.daemon import build_app
from zenpro_local.management_plane import tokens

ANY_FIELD = object()


def assert_error(
    response: Response, status: int, field: Any = ANY_FIELD
) -> dict[str, Any]:
    """Check ``response`` is exactly the API's error shape; return its error.

    Args:
        response: the response to check.
        status: the expected HTTP status.
        field: the expected ``field``; left out, any string or None passes.
    """
    assert response.status == status, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    assert isinstance(response.body, dict), response.body
    assert set(response.body) == {"error"}, response.body
    error = response.body["error"]
    assert set(error) == {"code", "message", "field"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["field"] is None or isinstance(error["field"], str), error
    if field is not ANY_FIELD:
        assert error["field"] == field, error
    return error


def operation_for(method: str, path: str) -> Operation:
    """Return the declared operation that serves ``method`` on a concrete path."""
    for operation in OPERATIONS:
        pattern = re.sub(r"{\w+}", "[^/]+", operation.path)
        if operation.method == method and re.fullmatch(pattern, path.split("?")[0]):
            return operation
    raise AssertionError(f"no declared operation serves {method} {path}")


def state_snapshot(data_dir: Path) -> dict[str, list[tuple]]:
    """Return every row of every table of the state DB, opened read-only.

    ``api_keys.last_used`` is left out: authenticating a request updates it
    (at most once a minute per key), whatever the request's outcome.
    """
    uri = f"file:{data_dir / 'state.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        snapshot = {}
        for table in tables:
            columns = [
                row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')
            ]
            kept = ", ".join(f'"{name}"' for name in columns if name != "last_used")
            rows = connection.execute(f'SELECT {kept} FROM "{table}"').fetchall()
            snapshot[table] = sorted(rows, key=repr)
        return snapshot


def row_counts(snapshot: dict[str, list[tuple]]) -> dict[str, int]:
    return {table: len(rows) for table, rows in snapshot.items()}


@contextlib.asynccontextmanager
async def running_daemon(data_dir: Path, **overrides: Any) -> AsyncIterator[Daemon]:
    """Run a daemon that keeps tenant records only, with its data in ``data_dir``.

    Args:
        data_dir: the daemon's data folder; an existing one is reused.
        overrides: settings by name, e.g. ``max_body_size=2048``.
    """
    settings = make_settings(data_dir, **overrides)
    app = build_app(settings, run_tenants=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            token = (settings.data_dir / "admin-token").read_text().strip()
            yield Daemon(
                url=str(server.make_url("")).rstrip("/"),
                data_dir=settings.data_dir,
                admin_token=token,
                session=session,
            )
    finally:
        await server.close()


@dataclass
class User:
    """A user made by a test, with an API key of its own."""

    id: str
    username: str
    token: str


async def create_user(daemon: Daemon, username: str) -> User:
    """Create a user (as the superuser) and an API key for it."""
    created = await daemon.call("POST", "/api/v1/users", json={"username": username})
    assert created.status == 201, created.body
    user_id = created.body["id"]
    key = await daemon.call(
        "POST", f"/api/v1/users/{user_id}/api_keys", json={"note": "test"}
    )
    assert key.status == 201, key.body
    return User(id=user_id, username=username, token=key.body["key"])


async def create_organization(daemon: Daemon, name: str, token: str = "admin") -> str:
    response = await daemon.call(
        "POST", "/api/v1/organizations", token=token, json={"name": name}
    )
    assert response.status == 201, response.body
    return response.body["id"]


async def create_tenant(
    daemon: Daemon, organization_id: str, name: str, token: str = "admin"
) -> str:
    response = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/tenants",
        token=token,
        json={"name": name},
    )
    assert response.status == 202, response.body
    return response.body["id"]


async def create_team(daemon: Daemon, organization_id: str, name: str) -> str:
    """Create a team in an organization (as the superuser); return its id."""
    response = await daemon.call(
        "POST", f"/api/v1/organizations/{organization_id}/teams", json={"name": name}
    )
    assert response.status == 201, response.body
    return response.body["id"]


async def tenant_server_token(daemon: Daemon, tenant_id: str) -> str:
    """Log in to the management plane as a tenant server; return its token.

    The tenant's client secret is replaced first, through a second SQLite
    connection, because the daemon keeps the one it generated to itself.
    """
    secret = "test-client-secret"
    with contextlib.closing(sqlite3.connect(daemon.data_dir / "state.db")) as db:
        with db:
            db.execute(
                "UPDATE tenants SET client_secret_hash = ? WHERE id = ?",
                [tokens.hash_token(secret), tenant_id],
            )

    login = await daemon.call(
        "POST",
        "/mp/auth/login",
        token=None,
        data=urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": tenant_id,
                "client_secret": secret,
                "audience": "zenpro-local",
            }
        ),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert login.status == 200, login.body
    return login.body["access_token"]


async def add_member(
    daemon: Daemon,
    organization_id: str,
    user_id: str,
    role_id: str = "organization-member",
) -> str:
    """Add a user to an organization; return the role assignment id."""
    response = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/members",
        json={"user_id": user_id, "role_id": role_id},
    )
    assert response.status == 201, response.body
    return response.body["id"]


async def assign_role(
    daemon: Daemon,
    organization_id: str,
    role_id: str,
    *,
    user_id: str | None = None,
    team_id: str | None = None,
    tenant_id: str | None = None,
) -> str:
    """Give a role (as the superuser); return the role assignment id."""
    body = {"role_id": role_id, "user_id": user_id, "team_id": team_id}
    body["tenant_id"] = tenant_id
    response = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization_id}/role_assignments",
        json={key: value for key, value in body.items() if value is not None},
    )
    assert response.status == 201, response.body
    return response.body["id"]


def build_template(
    base: Path, builder: Callable[[Daemon], Awaitable[Any]]
) -> tuple[Path, Any]:
    """Run ``builder`` against a new daemon once; keep its data folder.

    Tests then start daemons on copies of that folder (see
    :func:`copy_template`), so each starts from the same state in
    milliseconds instead of rebuilding it through the API.

    Returns:
        The data folder and what ``builder`` returned.
    """
    data_dir = base / "data"

    async def build() -> Any:
        async with running_daemon(data_dir) as daemon:
            return await builder(daemon)

    return data_dir, asyncio.run(build())


def copy_template(template: Path, destination: Path) -> Path:
    """Copy a closed daemon's data folder; return the copy's path."""
    return Path(shutil.copytree(template, destination / "data"))
