"""Create, start, stop, remove and purge tenants on a real Docker engine."""

from __future__ import annotations

import dataclasses
import socket
import uuid
from pathlib import Path

import aiohttp
import docker
import pytest

from zenpro_local.runtime.base import (
    LABEL_CONFIG_HASH,
    LABEL_DAEMON,
    LABEL_ORGANIZATION,
    LABEL_TENANT,
    LABEL_TENANT_NAME,
    InstanceState,
    StopTimeouts,
    TenantRuntimeError,
)
from zenpro_local.runtime.docker import DockerRuntime, resource_name

from .docker_helpers import wait_for_docker_health
from .zenml_api import activate_server, server_id, wait_for_health

pytestmark = pytest.mark.docker


async def test_start_serves_health(runtime, make_spec, docker_engine, daemon_id):
    spec = make_spec()

    await runtime.create(spec)
    await runtime.start(spec)

    await wait_for_health(runtime.address(spec))
    info = await runtime.inspect(spec.tenant_id)
    assert info.state is InstanceState.RUNNING
    assert info.config_hash == spec.config_hash()
    assert info.started_at

    (container,) = docker_engine.containers.list(
        filters={"label": f"{LABEL_TENANT}={spec.tenant_id}"}
    )
    health = await wait_for_docker_health(docker_engine, container.id)
    assert health == "healthy"

    assert container.labels[LABEL_DAEMON] == daemon_id
    assert container.labels[LABEL_ORGANIZATION] == spec.organization_id
    assert container.labels[LABEL_TENANT] == spec.tenant_id
    assert container.labels[LABEL_TENANT_NAME] == spec.name
    assert container.labels[LABEL_CONFIG_HASH] == spec.config_hash()

    host_config = container.attrs["HostConfig"]
    assert host_config["Memory"] == spec.memory_limit_mb * 1024 * 1024
    assert host_config["NanoCpus"] == int(spec.cpu_limit * 1e9)
    assert host_config["PidsLimit"] == spec.pids_limit
    assert host_config["RestartPolicy"]["Name"] == "unless-stopped"
    assert host_config["PortBindings"] == {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(spec.port)}]
    }

    name = resource_name(spec.tenant_id)
    mounts = container.attrs["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [
        ("volume", name, "/zenml")
    ]
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [name]
    assert docker_engine.volumes.get(name).attrs["Labels"][LABEL_DAEMON] == daemon_id
    assert docker_engine.networks.get(name).attrs["Labels"][LABEL_DAEMON] == daemon_id

    environment = container.attrs["Config"]["Env"]
    assert "ZENML_STORE_URL=sqlite:////zenml/zenml.db" in environment
    assert "ZENML_ANALYTICS_OPT_IN=false" in environment


async def test_start_twice_is_noop(runtime, make_spec):
    spec = make_spec()
    await runtime.create(spec)
    await runtime.start(spec)
    first = await runtime.inspect(spec.tenant_id)

    await runtime.create(spec)
    await runtime.start(spec)

    second = await runtime.inspect(spec.tenant_id)
    assert second.started_at == first.started_at
    await runtime.remove(spec.tenant_id)


async def test_data_survives_remove_and_create(runtime, make_spec, docker_engine):
    spec = make_spec()
    await runtime.create(spec)
    await runtime.start(spec)
    await wait_for_health(runtime.address(spec))
    await activate_server(runtime.address(spec))
    original_id = await server_id(runtime.address(spec))

    await runtime.stop(spec.tenant_id, StopTimeouts())
    assert (await runtime.inspect(spec.tenant_id)).state is InstanceState.CREATED
    await runtime.remove(spec.tenant_id)
    assert (await runtime.inspect(spec.tenant_id)).state is InstanceState.MISSING
    assert spec.tenant_id not in await runtime.list_networks()
    assert spec.tenant_id in await runtime.list_data()

    await runtime.create(spec)
    await runtime.start(spec)
    await wait_for_health(runtime.address(spec))

    assert await server_id(runtime.address(spec)) == original_id
    # An activated server rejects a second activation.
    async with aiohttp.ClientSession() as session:
        url = f"{runtime.address(spec)}/api/v1/activate"
        body = {"admin_username": "other", "admin_password": "other-password"}
        async with session.put(url, json=body) as response:
            assert response.status >= 400


async def test_config_change_recreates_container(runtime, make_spec, docker_engine):
    spec = make_spec()
    await runtime.create(spec)
    await runtime.start(spec)
    await wait_for_health(runtime.address(spec))
    original_id = await server_id(runtime.address(spec))
    (old,) = docker_engine.containers.list(
        filters={"label": f"{LABEL_TENANT}={spec.tenant_id}"}
    )

    changed = dataclasses.replace(spec, memory_limit_mb=640)
    await runtime.create(changed)
    await runtime.start(changed)
    await wait_for_health(runtime.address(changed))

    (new,) = docker_engine.containers.list(
        all=True, filters={"label": f"{LABEL_TENANT}={spec.tenant_id}"}
    )
    assert new.id != old.id
    assert new.labels[LABEL_CONFIG_HASH] == changed.config_hash()
    assert new.attrs["HostConfig"]["Memory"] == 640 * 1024 * 1024
    assert (await runtime.inspect(spec.tenant_id)).config_hash == changed.config_hash()
    assert await server_id(runtime.address(changed)) == original_id


async def test_purge_removes_volume(runtime, make_spec, docker_engine):
    spec = make_spec()
    await runtime.create(spec)

    with pytest.raises(TenantRuntimeError, match="still used by a container"):
        await runtime.purge(spec.tenant_id)

    await runtime.remove(spec.tenant_id)
    await runtime.purge(spec.tenant_id)

    assert spec.tenant_id not in await runtime.list_data()
    with pytest.raises(docker.errors.NotFound):
        docker_engine.volumes.get(resource_name(spec.tenant_id))
    # Purging again finds nothing to do.
    await runtime.purge(spec.tenant_id)


async def test_purge_rejects_foreign_volume(runtime, docker_engine):
    tenant_id = uuid.uuid4().hex
    volume = docker_engine.volumes.create(name=resource_name(tenant_id))
    try:
        with pytest.raises(TenantRuntimeError, match="not created by this daemon"):
            await runtime.purge(tenant_id)
        assert docker_engine.volumes.get(volume.name)
    finally:
        volume.remove()


async def test_start_without_create_fails(runtime, make_spec):
    spec = make_spec()

    with pytest.raises(TenantRuntimeError, match="has no container"):
        await runtime.start(spec)


async def test_stop_and_remove_missing_are_noops(runtime):
    tenant_id = uuid.uuid4().hex

    await runtime.stop(tenant_id, StopTimeouts())
    await runtime.remove(tenant_id)
    await runtime.purge(tenant_id)

    assert (await runtime.inspect(tenant_id)).state is InstanceState.MISSING
    assert await runtime.logs(tenant_id) == ""


async def test_logs_show_server_output(runtime, make_spec):
    spec = make_spec()
    await runtime.create(spec)
    await runtime.start(spec)
    await wait_for_health(runtime.address(spec))

    output = await runtime.logs(spec.tenant_id, tail=200)

    assert "Uvicorn running on" in output or "Application startup complete" in output
    assert spec.environment["ZENML_SERVER_JWT_SECRET_KEY"] not in output


async def test_missing_image_names_build_command(runtime, make_spec):
    spec = make_spec(image="zenpro-local-test/absent:0.0.1", zenml_version="0.0.1")

    with pytest.raises(TenantRuntimeError) as raised:
        await runtime.create(spec)

    message = str(raised.value)
    assert "zenpro-local-test/absent:0.0.1" in message
    assert (
        "zenpro-local image build --zenml-version 0.0.1 "
        "--tag zenpro-local-test/absent:0.0.1"
    ) in message
    assert not await runtime.image_present(spec.image)


async def test_unreachable_engine_is_reported(tmp_path: Path):
    socket_path = tmp_path / "absent.sock"
    runtime = DockerRuntime(
        daemon_id="test-unreachable",
        data_dir=tmp_path,
        base_url=f"unix://{socket_path}",
    )
    try:
        with pytest.raises(TenantRuntimeError, match="cannot reach the Docker engine"):
            await runtime.inspect("any-tenant")
    finally:
        await runtime.close()


async def test_invalid_environment_name_rejected(runtime, make_spec):
    spec = make_spec(environment={"BROKEN=NAME": "secret-value-123"})

    with pytest.raises(TenantRuntimeError) as raised:
        await runtime.create(spec)

    assert "Invalid environment variable name" in str(raised.value)
    assert "secret-value-123" not in str(raised.value)


async def test_missing_image_keeps_old_container(runtime, make_spec):
    spec = make_spec()
    await runtime.create(spec)
    upgrade = dataclasses.replace(spec, image="zenpro-local-test/absent:0.0.2")

    with pytest.raises(TenantRuntimeError, match="not present"):
        await runtime.create(upgrade)

    info = await runtime.inspect(spec.tenant_id)
    assert info.state is InstanceState.CREATED
    assert info.config_hash == spec.config_hash()


async def test_start_on_busy_port_fails(runtime, make_spec):
    spec = make_spec()
    await runtime.create(spec)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", spec.port))
        listener.listen()
        with pytest.raises(TenantRuntimeError) as raised:
            await runtime.start(spec)

    assert str(spec.port) in str(raised.value)
    assert (await runtime.inspect(spec.tenant_id)).state is not InstanceState.RUNNING
