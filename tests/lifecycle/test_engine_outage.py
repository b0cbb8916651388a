"""The daemon starting while the Docker engine is unreachable, then recovering.

The engine is reached through a Unix socket forwarder that the test opens
and closes, so "unreachable" is a real refused connection without stopping
the machine's engine.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import make_settings
from tests.lifecycle.conftest import (
    TENANT_TIMEOUT,
    TenantDaemon,
    cleanup,
    free_port,
    tenant_port_range,
)
from zenpro_local.daemon import build_app, daemon_id
from zenpro_local.runtime.docker import DockerRuntime

ENGINE_SOCKET = "/var/run/docker.sock"


class SocketForwarder:
    """Forwards connections on ``path`` to the Docker engine while open."""

    def __init__(self, path: Path):
        self.path = path
        self.server: asyncio.AbstractServer | None = None
        self.tasks: set[asyncio.Task] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_unix_server(self._forward, path=str(self.path))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.path.unlink(missing_ok=True)

    async def _forward(self, reader, writer) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            engine_reader, engine_writer = await asyncio.open_unix_connection(ENGINE_SOCKET)
            await asyncio.gather(
                self._pipe(reader, engine_writer), self._pipe(engine_reader, writer)
            )
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


async def start_daemon(
    data_dir: Path, socket_path: Path, session, https_port: int
) -> tuple[TestServer, TenantDaemon]:
    settings = make_settings(
        data_dir,
        reconcile_interval=1,
        health_interval=1,
        tenants_stop_timeout=5,
        https_port=https_port,
        caddy_bind="127.0.0.1",
        tenants_port_range=tenant_port_range(),
        # Lifecycle needs no management plane: tests/management_plane, the
        # dashboard and end-to-end tests run tenants in organization mode.
        tenants_auth_mode="local",
    )
    runtime = DockerRuntime(
        daemon_id=daemon_id(data_dir), data_dir=data_dir, base_url=f"unix://{socket_path}"
    )
    server = TestServer(build_app(settings, runtime), host="127.0.0.1")
    await server.start_server()
    daemon = TenantDaemon(
        url=str(server.make_url("")).rstrip("/"),
        data_dir=data_dir,
        admin_token=(data_dir / "admin-token").read_text().strip(),
        session=session,
        kind="docker",
        runtime=runtime,
    )
    return server, daemon


async def wait_idle(daemon: TenantDaemon, tenant_id: str) -> dict:
    deadline = time.monotonic() + TENANT_TIMEOUT
    while time.monotonic() < deadline:
        body = (await daemon.call("GET", f"/api/v1/tenants/{tenant_id}")).body
        if body["status"] in ("available", "failed") and not body["operation"]:
            return body
        await asyncio.sleep(0.5)
    pytest.fail(f"tenant still {body['status']} after {TENANT_TIMEOUT} s")


async def test_engine_down_at_start_converges(tmp_path, docker_client):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    socket_path = tmp_path / "engine.sock"
    https_port = free_port()
    forwarder = SocketForwarder(socket_path)
    await forwarder.open()
    try:
        async with aiohttp.ClientSession() as session:
            server, daemon = await start_daemon(data_dir, socket_path, session, https_port)
            organization = await daemon.create_organization()
            kept = await daemon.create_tenant(organization["id"], "alpha")
            await daemon.wait_status(kept["id"], "available")
            await server.close()

            # The engine is gone while the daemon starts and takes a request.
            await forwarder.close()
            server, daemon = await start_daemon(data_dir, socket_path, session, https_port)
            health = await daemon.call("GET", "/health", token=None)
            assert health.status == 200
            during = await daemon.create_tenant(organization["id"], "beta")
            failed = await wait_idle(daemon, during["id"])
            assert failed["status"] == "failed"
            assert "Docker engine" in failed["status_reason"]
            still = (await daemon.call("GET", f"/api/v1/tenants/{kept['id']}")).body
            assert still["status"] == "available"

            # The engine is back: nothing stays transient, a retry is one call.
            await forwarder.open()
            retried = await daemon.call("POST", f"/api/v1/tenants/{during['id']}/restart")
            assert retried.status == 202
            assert (await wait_idle(daemon, during["id"]))["status"] == "available"
            assert (await wait_idle(daemon, kept["id"]))["status"] == "available"
            await server.close()
    finally:
        await forwarder.close()
        cleanup("docker", data_dir)
