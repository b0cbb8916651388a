"""Two tenants' containers share no network."""

from __future__ import annotations

import socket

import docker
import pytest

from zenpro_local.runtime.base import LABEL_TENANT
from zenpro_local.runtime.docker import resource_name

from .zenml_api import wait_for_health

pytestmark = pytest.mark.docker

# Exits 0 when a TCP connection to argv[1]:argv[2] succeeds within 3 s.
CONNECT_SCRIPT = (
    "import socket, sys; "
    "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3); "
    "print('connected')"
)


def tenant_container(client: docker.DockerClient, tenant_id: str):
    (container,) = client.containers.list(
        filters={"label": f"{LABEL_TENANT}={tenant_id}"}
    )
    return container


def container_ip(container, tenant_id: str) -> str:
    networks = container.attrs["NetworkSettings"]["Networks"]
    return networks[resource_name(tenant_id)]["IPAddress"]


async def test_tenants_cannot_reach_each_other(runtime, make_spec, docker_engine):
    first, second = make_spec(), make_spec()
    for spec in (first, second):
        await runtime.create(spec)
        await runtime.start(spec)
    for spec in (first, second):
        await wait_for_health(runtime.address(spec))

    first_container = tenant_container(docker_engine, first.tenant_id)
    second_container = tenant_container(docker_engine, second.tenant_id)
    second_ip = container_ip(second_container, second.tenant_id)
    assert resource_name(first.tenant_id) != resource_name(second.tenant_id)

    # The host reaches the second server at that address, so it listens there.
    with socket.create_connection((second_ip, 8080), timeout=3):
        pass

    # Inside its own container, the first server's port is reachable ...
    own = first_container.exec_run(
        ["python3", "-c", CONNECT_SCRIPT, "127.0.0.1", "8080"]
    )
    assert own.exit_code == 0, own.output

    # ... but the second tenant's server is not.
    other = first_container.exec_run(
        ["python3", "-c", CONNECT_SCRIPT, second_ip, "8080"]
    )
    assert other.exit_code != 0, other.output
    assert b"connected" not in other.output
