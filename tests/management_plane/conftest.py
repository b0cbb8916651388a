"""Fixtures: a real daemon whose tenants run in organization mode.

The daemon listens on a free port that Caddy's admin host proxies to, so
tenant servers reach the management plane at
``https://admin.zenml.localhost:<port>/mp`` through Caddy, trusting the
daemon's CA. Tenants run under the process runtime; teardown kills every
server process recorded under the test's data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import make_settings
from tests.lifecycle.conftest import build_runtime, cleanup, free_port
from tests.lifecycle.conftest import docker_client  # noqa: F401 (fixture)
from zenpro_local.daemon import build_app

TENANT_TIMEOUT = 240.0


@dataclass
class Plane:
    """A running daemon, its CA file and helpers to call it."""

    url: str
    https_port: int
    data_dir: Path
    ca_file: Path
    admin_token: str
    session: aiohttp.ClientSession
    settings: object = None
    kind: str = "process"
    server: TestServer | None = None

    async def stop_daemon(self) -> None:
        """Stop the daemon and its Caddy; tenant servers keep running."""
        await self.server.close()

    async def start_daemon(self) -> None:
        """Start the daemon again on the same data folder and ports."""
        runtime = build_runtime(self.kind, self.data_dir)
        port = int(self.url.rsplit(":", 1)[1])
        self.server = TestServer(
            build_app(self.settings, runtime), host="127.0.0.1", port=port
        )
        await self.server.start_server()

    @property
    def api_url(self) -> str:
        return f"https://admin.zenml.localhost:{self.https_port}/mp"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    async def admin(self, method: str, path: str, json=None, token=None) -> dict:
        """Call the admin API and return the body of a successful answer."""
        status, body = await self.admin_call(method, path, json, token)
        assert status < 300, (status, body)
        return body

    async def admin_call(self, method, path, json=None, token=None):
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        async with self.session.request(
            method, self.url + path, json=json, headers=headers
        ) as response:
            return response.status, await response.json(content_type=None)

    async def mp(self, method: str, path: str, token: str | None = None, **kwargs):
        """Call the management plane through Caddy; return (status, body)."""
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method,
            self.api_url + path,
            headers=headers,
            ssl=self.ssl_context(),
            **kwargs,
        ) as response:
            text = await response.text()
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                return response.status, text

    async def wait_available(self, tenant_id: str) -> dict:
        deadline = time.monotonic() + TENANT_TIMEOUT
        while time.monotonic() < deadline:
            body = await self.admin("GET", f"/api/v1/tenants/{tenant_id}")
            if body["status"] == "available" and not body["operation"]:
                return body
            assert body["status"] != "failed", body["status_reason"]
            await asyncio.sleep(0.5)
        pytest.fail(f"tenant {tenant_id} not available after {TENANT_TIMEOUT} s")


@contextlib.asynccontextmanager
async def running_plane(tmp_path: Path, kind: str, caddy_bind: str):
    """Run a daemon with the ``kind`` runtime; remove what it made afterwards."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    listen_port, https_port = free_port(), free_port()
    tenant_ports = random.randrange(30000, 60000, 10)
    settings = make_settings(
        data_dir,
        listen=f"127.0.0.1:{listen_port}",
        https_port=https_port,
        caddy_bind=caddy_bind,
        reconcile_interval=2,
        health_interval=1,
        tenants_stop_timeout=5,
        # Ports of their own, away from other tests' daemons on this machine.
        tenants_port_range=f"{tenant_ports}-{tenant_ports + 9}",
    )
    runtime = build_runtime(kind, data_dir)
    server = TestServer(build_app(settings, runtime), host="127.0.0.1", port=listen_port)
    await server.start_server()
    plane = None
    try:
        async with aiohttp.ClientSession() as session:
            ca_file = tmp_path / "ca.pem"
            async with session.get(f"http://127.0.0.1:{listen_port}/api/v1/ca.pem") as got:
                ca_file.write_bytes(await got.read())
            plane = Plane(
                url=f"http://127.0.0.1:{listen_port}",
                https_port=https_port,
                data_dir=data_dir,
                ca_file=ca_file,
                admin_token=(data_dir / "admin-token").read_text().strip(),
                session=session,
                settings=settings,
                kind=kind,
                server=server,
            )
            yield plane
    finally:
        await (plane.server if plane else server).close()
        cleanup(kind, data_dir)


@pytest.fixture
async def plane(tmp_path: Path, zenml_venv: Path) -> AsyncIterator[Plane]:
    """A daemon whose tenants run as local processes."""
    async with running_plane(tmp_path, "process", "127.0.0.1") as running:
        yield running


@dataclass
class Member:
    """A user of the organization with a daemon API key."""

    id: str
    username: str
    key: str
    key_id: str


async def add_member(
    plane: Plane, organization_id: str, username: str, role_id: str | None,
    tenant_id: str | None = None, password: str | None = None,
) -> Member:
    """Create a user in the organization, with a role and an API key."""
    body = {"username": username}
    if password:
        body["password"] = password
    user = await plane.admin("POST", "/api/v1/users", body)
    org_path = f"/api/v1/organizations/{organization_id}"
    await plane.admin("POST", f"{org_path}/members", {"user_id": user["id"]})
    if role_id:
        assignment = {"role_id": role_id, "user_id": user["id"]}
        if tenant_id:
            assignment["tenant_id"] = tenant_id
        await plane.admin("POST", f"{org_path}/role_assignments", assignment)
    key = await plane.admin("POST", f"/api/v1/users/{user['id']}/api_keys", {})
    return Member(user["id"], username, key["key"], key["id"])


def zenml_cli(
    program: Path,
    plane: Plane,
    workdir: Path,
    *args: str,
    stdin: str = "",
    pro_api_url_in_environment: bool = True,
) -> subprocess.CompletedProcess:
    """Run a program of the stock zenml client with its own config folder.

    ``ZENML_PRO_API_URL`` points the client at the daemon: with a
    ``ZENPROKEY_`` key, ``zenml login --api-key`` uses it rather than the
    tenant's ``pro_api_url``. Without it, a command must pass
    ``--pro-api-url`` itself.
    """
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "ZENML_CONFIG_PATH": str(workdir / "zenml-config"),
        "REQUESTS_CA_BUNDLE": str(plane.ca_file),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_LOGGING_COLORS_DISABLED": "true",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "TERM": "dumb",
    }
    if pro_api_url_in_environment:
        environment["ZENML_PRO_API_URL"] = plane.api_url
    return subprocess.run(
        [str(program), *args],
        cwd=workdir,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
