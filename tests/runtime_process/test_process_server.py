"""ProcessRuntime against real ZenML servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import time

import aiohttp
import pytest

from zenpro_local.runtime import (
    InstanceState,
    StopTimeouts,
    TenantRuntimeError,
)
from zenpro_local.runtime.process import ProcessRuntime

pytestmark = pytest.mark.zenml

ADMIN = {"admin_username": "admin", "admin_password": "Test-password-1"}

logger = logging.getLogger(__name__)


async def activate(base_url: str) -> None:
    """Activate a fresh server with the test admin account."""
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{base_url}/api/v1/activate", json=ADMIN) as response:
            assert response.status == 200, await response.text()


async def login_status(base_url: str) -> int:
    """Log in as the test admin and return the HTTP status."""
    form = {"username": ADMIN["admin_username"], "password": ADMIN["admin_password"]}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base_url}/api/v1/login", data=form) as response:
            return response.status


async def server_id(base_url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/api/v1/info") as response:
            assert response.status == 200
            return (await response.json())["id"]


def port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        return client.connect_ex(("127.0.0.1", port)) == 0


async def wait_for_state(runtime, tenant_id, state, timeout=15.0) -> None:
    deadline = time.monotonic() + timeout
    while (await runtime.inspect(tenant_id)).state is not state:
        assert time.monotonic() < deadline, f"{tenant_id} never became {state}"
        await asyncio.sleep(0.1)


async def test_start_serves_health(runtime, make_spec, wait_healthy):
    spec = make_spec()

    await runtime.create(spec)
    created = await runtime.inspect(spec.tenant_id)
    assert created.state is InstanceState.CREATED
    assert created.config_hash == spec.config_hash()

    await runtime.start(spec)
    seconds = await wait_healthy(runtime, spec)
    logger.info("ZenML %s healthy after %.1f s", spec.zenml_version, seconds)

    running = await runtime.inspect(spec.tenant_id)
    assert running.state is InstanceState.RUNNING
    assert running.started_at
    assert [i.tenant_id for i in await runtime.list_instances()] == [spec.tenant_id]
    folder = runtime.tenant_dir(spec.tenant_id)
    assert (folder / "zenml.db").is_file()
    assert f"http://127.0.0.1:{spec.port}" in await runtime.logs(spec.tenant_id)


async def test_secret_never_written_to_disk(runtime, make_spec, wait_healthy):
    spec = make_spec()
    secret = spec.environment["ZENML_SERVER_JWT_SECRET_KEY"].encode()

    await runtime.create(spec)
    await runtime.start(spec)
    await wait_healthy(runtime, spec)
    await runtime.stop(spec.tenant_id, StopTimeouts())

    folder = runtime.tenant_dir(spec.tenant_id)
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert files
    for path in files:
        assert secret not in path.read_bytes(), path


async def test_stop_start_keeps_data(runtime, make_spec, wait_healthy):
    spec = make_spec()
    base_url = runtime.address(spec)
    await runtime.create(spec)
    await runtime.start(spec)
    await wait_healthy(runtime, spec)
    await activate(base_url)
    first_id = await server_id(base_url)

    started = time.monotonic()
    await runtime.stop(spec.tenant_id, StopTimeouts())
    logger.info("ZenML server stopped in %.1f s", time.monotonic() - started)
    assert (await runtime.inspect(spec.tenant_id)).state is InstanceState.CREATED
    assert not port_accepts(spec.port)

    await runtime.start(spec)
    await wait_healthy(runtime, spec)
    assert await login_status(base_url) == 200
    assert await server_id(base_url) == first_id


async def test_new_runtime_adopts_server(
    runtime,
    make_spec,
    wait_healthy,
    data_dir,
    zenml_venvs,
    daemon_id,
    process_start_time,
):
    spec = make_spec()
    await runtime.create(spec)
    await runtime.start(spec)
    await wait_healthy(runtime, spec)
    before = await runtime.inspect(spec.tenant_id)
    pid_file = runtime.tenant_dir(spec.tenant_id) / "server.pid"
    pid = int(pid_file.read_text())

    # A daemon restart: a new runtime object over the same data folder.
    restarted = ProcessRuntime(data_dir, zenml_venvs, daemon_id)
    adopted = await restarted.inspect(spec.tenant_id)
    assert adopted.state is InstanceState.RUNNING
    assert adopted.config_hash == spec.config_hash()
    assert adopted.started_at == before.started_at
    assert [i.tenant_id for i in await restarted.list_instances()] == [spec.tenant_id]

    await restarted.create(spec)
    await restarted.start(spec)
    assert int(pid_file.read_text()) == pid
    await wait_healthy(restarted, spec)

    other = ProcessRuntime(data_dir, zenml_venvs, "another-daemon")
    assert await other.list_instances() == []
    assert (await other.inspect(spec.tenant_id)).state is InstanceState.MISSING

    await restarted.stop(spec.tenant_id, StopTimeouts())
    assert (await restarted.inspect(spec.tenant_id)).state is InstanceState.CREATED
    assert process_start_time(pid) is None


async def test_kill_9_reports_exited(runtime, make_spec, wait_healthy):
    spec = make_spec()
    await runtime.create(spec)
    await runtime.start(spec)
    await wait_healthy(runtime, spec)
    pid = int((runtime.tenant_dir(spec.tenant_id) / "server.pid").read_text())

    os.kill(pid, signal.SIGKILL)
    await wait_for_state(runtime, spec.tenant_id, InstanceState.EXITED)
    exited = await runtime.inspect(spec.tenant_id)
    assert exited.started_at == ""
    assert [i.state for i in await runtime.list_instances()] == [InstanceState.EXITED]

    await runtime.start(spec)
    await wait_healthy(runtime, spec)
    new_pid = int((runtime.tenant_dir(spec.tenant_id) / "server.pid").read_text())
    assert new_pid != pid


async def test_snapshot_restore_round_trip(runtime, make_spec, wait_healthy, data_dir):
    original = make_spec()
    await runtime.create(original)
    await runtime.start(original)
    await wait_healthy(runtime, original)
    await activate(runtime.address(original))
    original_id = await server_id(runtime.address(original))
    await runtime.stop(original.tenant_id, StopTimeouts())

    snapshot = data_dir / "snapshots" / "original.db"
    await runtime.snapshot(original.tenant_id, snapshot)
    with sqlite3.connect(snapshot) as connection:
        users = connection.execute(
            "SELECT count(*) FROM user WHERE name = ?", (ADMIN["admin_username"],)
        ).fetchone()[0]
    assert users == 1

    copy = make_spec()
    await runtime.create(copy)
    await runtime.restore(copy.tenant_id, snapshot)
    await runtime.start(copy)
    await wait_healthy(runtime, copy)
    assert await login_status(runtime.address(copy)) == 200
    assert await server_id(runtime.address(copy)) == original_id


@pytest.mark.parametrize("listen_host", ["127.0.0.1", "0.0.0.0"])
async def test_port_in_use_rejected(runtime, make_spec, listen_host):
    spec = make_spec()
    await runtime.create(spec)

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((listen_host, spec.port))
        listener.listen()
        with pytest.raises(TenantRuntimeError) as raised:
            await runtime.start(spec)

    message = str(raised.value)
    assert f"port {spec.port}" in message
    assert "already in use" in message
    assert spec.tenant_id in message
    assert (await runtime.inspect(spec.tenant_id)).state is InstanceState.CREATED
