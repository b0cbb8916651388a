"""ProcessRuntime against real ZenML servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

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


def process_runs(pid: int) -> bool:
    """Return whether ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


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


# A daemon that creates and starts one tenant's server, then exits. The spec
# arrives as JSON on stdin, so its secret stays off the command line.
DAEMON_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from zenpro_local.runtime import TenantSpec
from zenpro_local.runtime.process import ProcessRuntime
from zenpro_local.runtime.venvs import VenvManager

async def main():
    data_dir, venvs_root, daemon_id = sys.argv[1:4]
    spec = TenantSpec(**json.load(sys.stdin))
    venvs = VenvManager(Path(venvs_root))
    runtime = ProcessRuntime(Path(data_dir), venvs, daemon_id)
    await runtime.create(spec)
    await runtime.start(spec)

asyncio.run(main())
"""


async def test_new_runtime_adopts_server(
    runtime,
    make_spec,
    wait_healthy,
    data_dir,
    zenml_venvs,
    daemon_id,
):
    spec = make_spec()
    command = [sys.executable, "-c", DAEMON_SCRIPT, str(data_dir)]
    command += [str(zenml_venvs.root), daemon_id]
    first_daemon = await asyncio.to_thread(
        subprocess.run,
        command,
        input=json.dumps(dataclasses.asdict(spec)),
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert first_daemon.returncode == 0, first_daemon.stderr
    pid_file = runtime.tenant_dir(spec.tenant_id) / "server.pid"
    pid = int(pid_file.read_text())

    # The first daemon has exited: this runtime object is the restarted one.
    adopted = await runtime.inspect(spec.tenant_id)
    assert adopted.state is InstanceState.RUNNING
    assert adopted.config_hash == spec.config_hash()
    assert adopted.started_at
    assert [i.tenant_id for i in await runtime.list_instances()] == [spec.tenant_id]
    await wait_healthy(runtime, spec)

    await runtime.create(spec)
    await runtime.start(spec)
    assert int(pid_file.read_text()) == pid
    assert (await runtime.inspect(spec.tenant_id)).started_at == adopted.started_at

    other = ProcessRuntime(data_dir, zenml_venvs, "another-daemon")
    assert await other.list_instances() == []
    assert (await other.inspect(spec.tenant_id)).state is InstanceState.MISSING

    await runtime.stop(spec.tenant_id, StopTimeouts())
    assert (await runtime.inspect(spec.tenant_id)).state is InstanceState.CREATED
    assert not process_runs(pid)
    assert not port_accepts(spec.port)


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
