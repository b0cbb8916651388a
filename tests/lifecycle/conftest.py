"""Fixtures for tenant lifecycle tests: a real daemon with a real runtime.

Each test gets a fresh data folder, so a daemon id of its own; teardown
removes every container, network and volume carrying that id, and kills
every local server process recorded under the folder.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import docker
import docker.errors
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import Daemon, make_settings, cache_dir
from zenpro_local.daemon import build_app, daemon_id
from zenpro_local.runtime.base import LABEL_DAEMON
from zenpro_local.runtime.docker import DockerRuntime
from zenpro_local.runtime.process import ProcessRuntime
from zenpro_local.runtime.venvs import VenvManager

REPO_ROOT = Path(__file__).resolve().parents[2]
ZENML_VERSION = "0.98.0"
IMAGE = f"zenmldocker/zenml-server:{ZENML_VERSION}"
TENANT_TIMEOUT = 240.0


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """A Docker engine with the tenant image, both set up by the scripts."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        result = subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "ensure-docker.sh")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        client = docker.from_env()
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        from zenpro_local.images import build_image, default_work_dir

        build_image(ZENML_VERSION, IMAGE, default_work_dir(), client=client)
    yield client
    client.close()


def remove_labelled(client: docker.DockerClient, daemon: str) -> None:
    """Remove every container, network and volume labelled with ``daemon``."""
    label = f"{LABEL_DAEMON}={daemon}"
    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    for network in client.networks.list(filters={"label": label}):
        network.remove()
    for volume in client.volumes.list(filters={"label": label}):
        volume.remove(force=True)


def kill_process_servers(data_dir: Path) -> None:
    from tests.runtime_process.conftest import kill_recorded_servers

    kill_recorded_servers(data_dir)


@dataclass
class TenantDaemon(Daemon):
    """A daemon that runs tenant servers, plus test helpers."""

    kind: str = ""
    runtime: object = None

    async def create_organization(self, name: str = "acme") -> dict:
        response = await self.call("POST", "/api/v1/organizations", json={"name": name})
        assert response.status == 201, response.body
        return response.body

    async def create_tenant(self, organization_id: str, name: str) -> dict:
        response = await self.call(
            "POST",
            f"/api/v1/organizations/{organization_id}/tenants",
            json={"name": name},
        )
        assert response.status == 202, response.body
        return response.body

    async def wait_status(
        self, tenant_id: str, *wanted: str, timeout: float = TENANT_TIMEOUT
    ) -> dict:
        """Poll the tenant until its status is one of ``wanted``, idle."""
        deadline = time.monotonic() + timeout
        while True:
            response = await self.call("GET", f"/api/v1/tenants/{tenant_id}")
            body = response.body
            if response.status == 404 and "purged" in wanted:
                return {}
            if body["status"] in wanted and not body["operation"]:
                return body
            if body["status"] == "failed" and not body["operation"]:
                pytest.fail(f"tenant failed: {body['status_reason']}")
            if time.monotonic() > deadline:
                pytest.fail(f"tenant still {body['status']} after {timeout} s")
            await asyncio.sleep(0.5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tenant_port_range() -> str:
    """A random window of tenant ports, so daemons running at once differ."""
    first = random.randrange(20000, 29000, 100)
    return f"{first}-{first + 99}"


def build_runtime(kind: str, data_dir: Path):
    identity = daemon_id(data_dir)
    if kind == "docker":
        return DockerRuntime(daemon_id=identity, data_dir=data_dir)
    venvs = VenvManager(cache_dir() / "venvs")
    return ProcessRuntime(data_dir=data_dir, venvs=venvs, daemon_id=identity)


@pytest.fixture(params=["docker", "process"])
def runtime_kind(request) -> str:
    if request.param == "docker":
        request.getfixturevalue("docker_client")
    else:
        request.getfixturevalue("zenml_venv")
    return request.param


@pytest.fixture
async def tenant_daemon(tmp_path: Path, runtime_kind: str) -> AsyncIterator[TenantDaemon]:
    """A daemon with the parametrized runtime; everything removed afterwards."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    settings = make_settings(
        data_dir,
        reconcile_interval=2,
        health_interval=1,
        tenants_stop_timeout=5,
        https_port=free_port(),
        caddy_bind="127.0.0.1",
        tenants_port_range=tenant_port_range(),
        # Lifecycle needs no management plane: tests/management_plane, the
        # dashboard and end-to-end tests run tenants in organization mode.
        tenants_auth_mode="local",
    )
    runtime = build_runtime(runtime_kind, data_dir)
    app = build_app(settings, runtime)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield TenantDaemon(
                url=str(server.make_url("")).rstrip("/"),
                data_dir=settings.data_dir,
                admin_token=(data_dir / "admin-token").read_text().strip(),
                session=session,
                kind=runtime_kind,
                runtime=runtime,
            )
    finally:
        await server.close()
        cleanup(runtime_kind, data_dir)


def cleanup(kind: str, data_dir: Path) -> None:
    if kind == "docker":
        client = docker.from_env()
        remove_labelled(client, daemon_id(data_dir))
        client.close()
    else:
        kill_process_servers(data_dir)


@dataclass
class DaemonProcess:
    """The daemon as a child process, as an operator runs it."""

    process: subprocess.Popen
    url: str
    data_dir: Path

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def start_daemon_process(data_dir: Path, port: int, kind: str) -> DaemonProcess:
    environment = {
        **os.environ,
        "ZENPRO_DATA_DIR": str(data_dir),
        "ZENPRO_LISTEN": f"127.0.0.1:{port}",
        "ZENPRO_RUNTIME": kind,
        "ZENPRO_HTTPS_PORT": str(free_port()),
        "ZENPRO_TENANTS_PORT_RANGE": tenant_port_range(),
        "ZENPRO_CADDY_BIND": "127.0.0.1",
        "ZENPRO_RECONCILE_INTERVAL": "2",
        # As in tenant_daemon: this daemon is killed while tenants start,
        # and an organization tenant cannot start without it.
        "ZENPRO_TENANTS_AUTH_MODE": "local",
        "ZENPRO_PROCESS_VENVS_DIR": str(cache_dir() / "venvs"),
    }
    log = open(data_dir / "daemon.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "zenpro_local", "serve"],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return DaemonProcess(process, f"http://127.0.0.1:{port}", data_dir)
