"""Fixtures for the process runtime tests: a cached ZenML venv, real servers.

Installing ``zenml[server]`` took 36 s on a 2-core machine with a warm pip
cache, and takes minutes without one. So the virtual environment lives in a
cache folder that survives test runs:
``$ZENPRO_TEST_CACHE/venvs`` (default ``~/.cache/zenpro-local-tests``).
Everything else a test creates (data folders, processes) is removed in
teardown.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import secrets
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from zenpro_local.runtime import InstanceState, StopTimeouts, TenantSpec
from zenpro_local.runtime.process import ProcessRuntime
from zenpro_local.runtime.venvs import VenvManager

ZENML_VERSION = "0.98.0"

# A ZenML 0.98.0 server returned 200 on /health about 5 s after its start
# on an idle 2-core machine. The deadline leaves room for a loaded one.
HEALTH_DEADLINE = 90.0

# Short timeouts for teardown, where a quick stop matters more than grace.
TEARDOWN_TIMEOUTS = StopTimeouts(graceful=5.0, terminate=3.0, kill=3.0)


def cache_dir() -> Path:
    """Return the folder that keeps the ZenML venv between test runs."""
    configured = os.environ.get("ZENPRO_TEST_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "zenpro-local-tests"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_start_time(pid: int) -> int | None:
    """Return a process's start time in clock ticks since boot, None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def kill_recorded_servers(data_dir: Path) -> None:
    """SIGKILL every live process that a marker under ``data_dir`` names.

    Independent of the runtime's own stop, so a broken stop leaves no server
    behind. A process counts only while its start time matches the marker,
    so a recycled pid is left alone.
    """
    for marker_path in data_dir.glob("tenants/*/instance.json"):
        marker = json.loads(marker_path.read_text())
        pid = marker.get("pid")
        if not pid or process_start_time(pid) != marker.get("pid_start_time"):
            continue
        try:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@pytest.fixture(scope="session")
def zenml_venvs() -> VenvManager:
    """The cached VenvManager, with ZenML's environment installed."""
    manager = VenvManager(cache_dir() / "venvs")
    if not manager.is_ready(ZENML_VERSION):
        # A thread of its own, so asyncio.run does not touch the event loop
        # that pytest-asyncio manages in this thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
            install = executor.submit(asyncio.run, manager.ensure_venv(ZENML_VERSION))
            install.result()
    return manager


@pytest.fixture
def data_dir():
    """A fresh data folder, deleted with every server recorded in it."""
    path = Path(tempfile.mkdtemp(prefix="zenpro-process-test-"))
    yield path
    kill_recorded_servers(path)
    shutil.rmtree(path)


@pytest.fixture
def daemon_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def runtime(data_dir, zenml_venvs, daemon_id):
    """A ProcessRuntime whose servers are stopped in teardown."""
    runtime = ProcessRuntime(data_dir, zenml_venvs, daemon_id)
    yield runtime
    await stop_all(runtime)


async def stop_all(runtime: ProcessRuntime) -> None:
    for instance in await runtime.list_instances():
        if instance.state is InstanceState.RUNNING:
            await runtime.stop(instance.tenant_id, TEARDOWN_TIMEOUTS)
    await runtime.close()


@pytest.fixture
def make_spec() -> Callable[..., TenantSpec]:
    """Build a TenantSpec with a unique tenant id, a free port and a secret."""

    def make(**overrides) -> TenantSpec:
        tenant_id = f"t-{uuid.uuid4().hex[:10]}"
        values = {
            "tenant_id": tenant_id,
            "organization_id": "org-test",
            "name": tenant_id,
            "zenml_version": ZENML_VERSION,
            "port": free_port(),
            "environment": {"ZENML_SERVER_JWT_SECRET_KEY": secrets.token_hex(32)},
        }
        values.update(overrides)
        return TenantSpec(**values)

    return make


@pytest.fixture
def wait_healthy() -> Callable[[ProcessRuntime, TenantSpec], Awaitable[float]]:
    """Wait until /health returns 200; return the seconds it took."""

    async def wait(runtime: ProcessRuntime, spec: TenantSpec) -> float:
        started = time.monotonic()
        deadline = started + HEALTH_DEADLINE
        url = f"{runtime.address(spec)}/health"
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                info = await runtime.inspect(spec.tenant_id)
                if info.state is not InstanceState.RUNNING:
                    logs = await runtime.logs(spec.tenant_id, 40)
                    pytest.fail(f"server is {info.state.value}; log tail:\n{logs}")
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            return time.monotonic() - started
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.25)
        logs = await runtime.logs(spec.tenant_id, 40)
        pytest.fail(f"no healthy /health after {HEALTH_DEADLINE} s; log:\n{logs}")

    return wait
