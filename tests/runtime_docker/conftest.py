"""Fixtures for tests against a real Docker engine and a real ZenML image.

The session starts the engine with scripts/ensure-docker.sh and builds the
ZenML server image offline once (an existing image is reused). Every test
gets a runtime with its own daemon id, so teardown removes exactly the
containers, networks and volumes that the test created.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from zenpro_local.images import build_image, default_image, default_work_dir
from zenpro_local.runtime.base import LABEL_DAEMON, TenantSpec
from zenpro_local.runtime.docker import DockerRuntime

ZENML_VERSION = os.environ.get("ZENPRO_TEST_ZENML_VERSION", "0.98.0")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _engine_answers() -> bool:
    try:
        docker.from_env().ping()
    except docker.errors.DockerException:
        return False
    return True


@pytest.fixture(scope="session")
def docker_engine() -> docker.DockerClient:
    """A Docker engine, started by scripts/ensure-docker.sh if needed."""
    if not _engine_answers():
        if os.geteuid() != 0:
            pytest.skip("no Docker engine answers and starting one needs root")
        result = subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "ensure-docker.sh")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"ensure-docker.sh failed:\n{result.stderr}"

    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="session")
def server_image(docker_engine: docker.DockerClient) -> str:
    """The ZenML server image, built offline unless it exists."""
    image = default_image(ZENML_VERSION)
    build_image(ZENML_VERSION, image, default_work_dir(), client=docker_engine)
    return image


@pytest.fixture
def daemon_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def created_containers(docker_engine: docker.DockerClient) -> Iterator[list[str]]:
    """Names of containers a test creates without the daemon label."""
    names: list[str] = []
    yield names
    for name in names:
        _remove_quietly(docker_engine.containers, name)


@pytest.fixture
async def runtime(
    docker_engine: docker.DockerClient,
    server_image: str,
    daemon_id: str,
    tmp_path: Path,
) -> AsyncIterator[DockerRuntime]:
    """A DockerRuntime whose objects are all removed after the test."""
    runtime = DockerRuntime(daemon_id=daemon_id, data_dir=tmp_path / "runtime")
    yield runtime
    await runtime.close()
    remove_labelled_objects(docker_engine, daemon_id)


def remove_labelled_objects(client: docker.DockerClient, daemon_id: str) -> None:
    """Remove every container, network and volume labelled with ``daemon_id``."""
    filters = {"label": f"{LABEL_DAEMON}={daemon_id}"}
    for container in client.containers.list(all=True, filters=filters):
        _remove_quietly(client.containers, container.id)
    for network in client.networks.list(filters=filters):
        network.remove()
    for volume in client.volumes.list(filters=filters):
        volume.remove(force=True)


def _remove_quietly(containers, name: str) -> None:
    try:
        containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def make_spec(server_image: str) -> Callable[..., TenantSpec]:
    """Return a factory of tenant specs with unique ids and free ports."""

    def make(**overrides) -> TenantSpec:
        tenant_id = uuid.uuid4().hex
        values = {
            "tenant_id": tenant_id,
            "organization_id": "org-" + uuid.uuid4().hex[:8],
            "name": f"team-{tenant_id[:6]}",
            "zenml_version": ZENML_VERSION,
            "port": free_port(),
            "image": server_image,
            "environment": {"ZENML_SERVER_JWT_SECRET_KEY": uuid.uuid4().hex},
            "memory_limit_mb": 768,
            "cpu_limit": 1.0,
            "pids_limit": 256,
        }
        values.update(overrides)
        return TenantSpec(**values)

    return make
