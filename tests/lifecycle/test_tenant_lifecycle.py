"""Tenant lifecycle through the admin API, against real ZenML servers.

Every test runs once with the Docker runtime and once with the local
process runtime, unless it is about Docker objects.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time

import aiohttp
import docker
import pytest

from tests.lifecycle.conftest import (
    IMAGE,
    TENANT_TIMEOUT,
    cleanup,
    start_daemon_process,
)
from zenpro_local.runtime.base import (
    LABEL_DAEMON,
    LABEL_ORGANIZATION,
    LABEL_TENANT,
)
from zenpro_local.daemon import daemon_id
from zenpro_local.store import Store


async def zenml_token(base_url: str, api_key: str) -> str:
    """Log in to a ZenML server with an API key, as the zenml client does."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base_url}/api/v1/login",
            data={"grant_type": "zenml-api-key", "password": api_key},
        ) as response:
            assert response.status == 200, await response.text()
            return (await response.json())["access_token"]


async def zenml_call(base_url: str, token: str, method: str, path: str, **kwargs):
    async with aiohttp.ClientSession() as session:
        async with session.request(
            method,
            f"{base_url}{path}",
            headers={"Authorization": f"Bearer {token}"},
            **kwargs,
        ) as response:
            return response.status, await response.json()


async def local_url(tenant_daemon, tenant_id: str) -> str:
    """Return the tenant server's own address, as the daemon reaches it."""
    store = Store(tenant_daemon.data_dir / "state.db")
    try:
        row = store.query_one("SELECT port FROM tenants WHERE id = ?", [tenant_id])
    finally:
        store.close()
    return f"http://127.0.0.1:{row['port']}"


async def new_api_key(tenant_daemon, tenant_id: str) -> str:
    response = await tenant_daemon.call("POST", f"/api/v1/tenants/{tenant_id}/api_keys")
    assert response.status == 201, response.body
    return response.body["key"]


async def write_tag(base_url: str, api_key: str, name: str) -> None:
    token = await zenml_token(base_url, api_key)
    status, body = await zenml_call(
        base_url, token, "POST", "/api/v1/tags", json={"name": name}
    )
    assert status == 200, body


async def tag_names(base_url: str, api_key: str) -> set[str]:
    token = await zenml_token(base_url, api_key)
    status, body = await zenml_call(base_url, token, "GET", "/api/v1/tags")
    assert status == 200, body
    return {item["name"] for item in body["items"]}


async def test_create_reaches_available(tenant_daemon):
    organization = await tenant_daemon.create_organization()
    created = await tenant_daemon.create_tenant(organization["id"], "alpha")
    assert created["status"] == "pending"
    assert created["url"].startswith("https://alpha.zenml.localhost:")

    tenant = await tenant_daemon.wait_status(created["id"], "available")
    assert tenant["runtime"] == tenant_daemon.kind

    events = await tenant_daemon.call("GET", f"/api/v1/tenants/{created['id']}/events")
    actions = [event["action"] for event in events.body["items"]]
    assert actions[0] == "created"
    assert actions[-1] == "available"
    assert "step" in actions


@pytest.mark.parametrize("runtime_kind", ["docker"], indirect=True)
async def test_docker_objects_labelled_and_limited(tenant_daemon, docker_client):
    organization = await tenant_daemon.create_organization()
    created = await tenant_daemon.create_tenant(organization["id"], "alpha")
    await tenant_daemon.wait_status(created["id"], "available")
    identity = daemon_id(tenant_daemon.data_dir)

    containers = docker_client.containers.list(
        filters={"label": f"{LABEL_TENANT}={created['id']}"}
    )
    assert len(containers) == 1
    container = containers[0]
    labels = container.labels
    assert labels[LABEL_DAEMON] == identity
    assert labels[LABEL_ORGANIZATION] == organization["id"]
    host_config = container.attrs["HostConfig"]
    assert host_config["Memory"] == 1024 * 1024 * 1024
    assert host_config["NanoCpus"] == 1_000_000_000
    assert host_config["PidsLimit"] == 512
    bindings = host_config["PortBindings"]["8080/tcp"]
    assert [binding["HostIp"] for binding in bindings] == ["127.0.0.1"]

    networks = list(container.attrs["NetworkSettings"]["Networks"])
    assert networks == [f"zenpro-{created['id']}"]
    mounts = [mount["Name"] for mount in container.attrs["Mounts"]]
    assert mounts == [f"zenpro-{created['id']}"]


async def test_data_survives_deactivate_and_reactivate(tenant_daemon):
    organization = await tenant_daemon.create_organization()
    created = await tenant_daemon.create_tenant(organization["id"], "alpha")
    await tenant_daemon.wait_status(created["id"], "available")
    base_url = await local_url(tenant_daemon, created["id"])
    api_key = await new_api_key(tenant_daemon, created["id"])
    await write_tag(base_url, api_key, "kept-through-deactivation")

    response = await tenant_daemon.call(
        "PATCH", f"/api/v1/tenants/{created['id']}", json={"desired_state": "deactivated"}
    )
    assert response.status == 202
    await tenant_daemon.wait_status(created["id"], "deactivated")
    with pytest.raises(aiohttp.ClientError):
        await zenml_token(base_url, api_key)

    response = await tenant_daemon.call(
        "PATCH", f"/api/v1/tenants/{created['id']}", json={"desired_state": "available"}
    )
    assert response.status == 202
    await tenant_daemon.wait_status(created["id"], "available")
    assert "kept-through-deactivation" in await tag_names(base_url, api_key)


async def test_restart_keeps_data(tenant_daemon):
    organization = await tenant_daemon.create_organization()
    created = await tenant_daemon.create_tenant(organization["id"], "alpha")
    await tenant_daemon.wait_status(created["id"], "available")
    base_url = await local_url(tenant_daemon, created["id"])
    api_key = await new_api_key(tenant_daemon, created["id"])
    await write_tag(base_url, api_key, "kept-through-restart")

    response = await tenant_daemon.call("POST", f"/api/v1/tenants/{created['id']}/restart")
    assert response.status == 202
    second = await tenant_daemon.call("POST", f"/api/v1/tenants/{created['id']}/restart")
    assert second.status == 409
    assert "busy" in second.body["error"]["message"]

    await tenant_daemon.wait_status(created["id"], "available")
    assert "kept-through-restart" in await tag_names(base_url, api_key)


async def test_deactivate_interrupts_provisioning(tenant_daemon):
    organization = await tenant_daemon.create_organization()
    created = await tenant_daemon.create_tenant(organization["id"], "alpha")

    response = await tenant_daemon.call(
        "PATCH", f"/api/v1/tenants/{created['id']}", json={"desired_state": "deactivated"}
    )
    assert response.status == 202
    tenant = await tenant_daemon.wait_status(created["id"], "deactivated")
    assert tenant["desired_state"] == "deactivated"


async def test_delete_then_purge_removes_everything(tenant_daemon):
    organization = await tenant_daemon.create_organization()
    created = await tenant_daemon.create_tenant(organization["id"], "alpha")
    await tenant_daemon.wait_status(created["id"], "available")

    response = await tenant_daemon.call("DELETE", f"/api/v1/tenants/{created['id']}")
    assert response.status == 202
    deleted = await tenant_daemon.wait_status(created["id"], "deleted")
    assert deleted["deleted"] is not None
    assert created["id"] in await tenant_daemon.runtime.list_data()
    assert await tenant_daemon.runtime.list_instances() == []

    listed = await tenant_daemon.call("GET", "/api/v1/tenants")
    assert listed.body["total"] == 0
    with_deleted = await tenant_daemon.call("GET", "/api/v1/tenants?include_deleted=true")
    assert [item["name"] for item in with_deleted.body["items"]] == ["alpha"]

    response = await tenant_daemon.call(
        "DELETE", f"/api/v1/tenants/{created['id']}?purge=true"
    )
    assert response.status == 202
    await tenant_daemon.wait_status(created["id"], "purged")
    assert await tenant_daemon.runtime.list_data() == []
    gone = await tenant_daemon.call("GET", f"/api/v1/tenants/{created['id']}")
    assert gone.status == 404

    if tenant_daemon.kind == "docker":
        client = docker.from_env()
        label = f"{LABEL_DAEMON}={daemon_id(tenant_daemon.data_dir)}"
        assert client.containers.list(all=True, filters={"label": label}) == []
        assert client.networks.list(filters={"label": label}) == []
        assert client.volumes.list(filters={"label": label}) == []
        client.close()


def remove_server_by_force(tenant_daemon, tenant_id: str) -> None:
    if tenant_daemon.kind == "docker":
        client = docker.from_env()
        for container in client.containers.list(
            all=True, filters={"label": f"{LABEL_TENANT}={tenant_id}"}
        ):
            container.remove(force=True)
        client.close()
        return
    marker = tenant_daemon.data_dir / "tenants" / tenant_id / "instance.json"
    os.killpg(json.loads(marker.read_text())["pid"], signal.SIGKILL)


async def test_removed_server_is_repaired(tenant_daemon):
    organization = await tenant_daemon.create_organization()
    created = await tenant_daemon.create_tenant(organization["id"], "alpha")
    await tenant_daemon.wait_status(created["id"], "available")
    base_url = await local_url(tenant_daemon, created["id"])
    api_key = await new_api_key(tenant_daemon, created["id"])
    await write_tag(base_url, api_key, "kept-through-repair")

    # What an operator's `docker rm -f`, or a kill -9 of the server, does.
    remove_server_by_force(tenant_daemon, created["id"])

    deadline = time.monotonic() + TENANT_TIMEOUT
    while time.monotonic() < deadline:
        events = await tenant_daemon.call(
            "GET", f"/api/v1/tenants/{created['id']}/events?limit=1000"
        )
        if any(event["action"] == "repair" for event in events.body["items"]):
            break
        await asyncio.sleep(0.5)
    else:
        pytest.fail("the reconciler did not notice the removed server")
    await tenant_daemon.wait_status(created["id"], "available")
    assert "kept-through-repair" in await tag_names(base_url, api_key)


@pytest.mark.parametrize("runtime_kind", ["docker"], indirect=True)
async def test_orphans_removed_unlabelled_kept(tenant_daemon, docker_client):
    identity = daemon_id(tenant_daemon.data_dir)
    orphan = docker_client.containers.create(
        IMAGE,
        command=["sleep", "600"],
        entrypoint=[],
        labels={LABEL_DAEMON: identity, LABEL_TENANT: "no-such-tenant"},
    )
    stranger = docker_client.containers.create(
        IMAGE, command=["sleep", "600"], entrypoint=[], labels={"owner": "someone-else"}
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            names = {c.id for c in docker_client.containers.list(all=True)}
            if orphan.id not in names:
                break
            await asyncio.sleep(0.5)
        else:
            pytest.fail("the orphaned labelled container was not removed")
        stranger.reload()
        assert stranger.status == "created"
    finally:
        stranger.remove(force=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_health(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail(f"daemon at {url} did not answer /health")


def caddy_pids(data_dir) -> list[int]:
    """Return the pids of Caddy processes working in ``data_dir``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                command = file.read().split(b"\0")
        except OSError:
            continue
        if command and command[0].endswith(b"caddy") and str(data_dir).encode() in b" ".join(command):
            found.append(int(entry))
    return found


async def wait_caddy_gone(data_dir, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while caddy_pids(data_dir):
        if time.monotonic() > deadline:
            pytest.fail(f"Caddy outlived its killed daemon: pids {caddy_pids(data_dir)}")
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("kind", ["docker", "process"])
async def test_killed_daemon_converges(tmp_path, kind, request):
    if kind == "docker":
        request.getfixturevalue("docker_client")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    daemon = start_daemon_process(data_dir, port, kind)
    try:
        await wait_health(daemon.url)
        token = (data_dir / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(
                f"{daemon.url}/api/v1/organizations", json={"name": "acme"}
            ) as response:
                organization = await response.json()
            async with session.post(
                f"{daemon.url}/api/v1/organizations/{organization['id']}/tenants",
                json={"name": "alpha"},
            ) as response:
                tenant = await response.json()

            # SIGKILL once provisioning has begun.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                async with session.get(f"{daemon.url}/api/v1/tenants/{tenant['id']}") as r:
                    if (await r.json())["status"] == "provisioning":
                        break
                await asyncio.sleep(0.1)
            daemon.kill()
            await wait_caddy_gone(data_dir)

            daemon = start_daemon_process(data_dir, port, kind)
            await wait_health(daemon.url)
            body = await poll_tenant(session, daemon.url, tenant["id"])
            assert body["status"] == "available", body["status_reason"]
    finally:
        daemon.process.terminate()
        daemon.process.wait(timeout=60)
        cleanup(kind, data_dir)


async def test_daemon_restart_adopts_running_tenant(tmp_path, docker_client):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    daemon = start_daemon_process(data_dir, port, "docker")
    try:
        await wait_health(daemon.url)
        token = (data_dir / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(
                f"{daemon.url}/api/v1/organizations", json={"name": "acme"}
            ) as response:
                organization = await response.json()
            async with session.post(
                f"{daemon.url}/api/v1/organizations/{organization['id']}/tenants",
                json={"name": "alpha"},
            ) as response:
                tenant = await response.json()
            body = await poll_tenant(session, daemon.url, tenant["id"])
            assert body["status"] == "available", body["status_reason"]
            container = docker_client.containers.list(
                filters={"label": f"{LABEL_TENANT}={tenant['id']}"}
            )[0]
            started_at = container.attrs["State"]["StartedAt"]

            daemon.process.terminate()
            daemon.process.wait(timeout=60)
            daemon = start_daemon_process(data_dir, port, "docker")
            await wait_health(daemon.url)
            body = await poll_tenant(session, daemon.url, tenant["id"])

        assert body["status"] == "available"
        container.reload()
        assert container.attrs["State"]["StartedAt"] == started_at
        assert container.attrs["RestartCount"] == 0
    finally:
        daemon.process.terminate()
        daemon.process.wait(timeout=60)
        cleanup("docker", data_dir)


async def poll_tenant(session, url: str, tenant_id: str) -> dict:
    """Poll until the tenant is available or failed and idle; return it."""
    deadline = time.monotonic() + TENANT_TIMEOUT
    while time.monotonic() < deadline:
        async with session.get(f"{url}/api/v1/tenants/{tenant_id}") as response:
            body = await response.json()
        if body["status"] in ("available", "failed") and not body["operation"]:
            return body
        await asyncio.sleep(0.5)
    pytest.fail(f"tenant still {body['status']} after {TENANT_TIMEOUT} s")


@pytest.mark.parametrize("runtime_kind", ["docker"], indirect=True)
async def test_unresponsive_server_restarted(tenant_daemon, docker_client):
    organization = await tenant_daemon.create_organization()
    created = await tenant_daemon.create_tenant(organization["id"], "alpha")
    await tenant_daemon.wait_status(created["id"], "available")
    container = docker_client.containers.list(
        filters={"label": f"{LABEL_TENANT}={created['id']}"}
    )[0]

    # A paused container keeps running but answers nothing, like a hung server.
    container.pause()

    deadline = time.monotonic() + TENANT_TIMEOUT
    while time.monotonic() < deadline:
        events = await tenant_daemon.call(
            "GET", f"/api/v1/tenants/{created['id']}/events?limit=1000"
        )
        if any(event["action"] == "repair" for event in events.body["items"]):
            break
        await asyncio.sleep(0.5)
    else:
        pytest.fail("the unresponsive server was not restarted")
    tenant = await tenant_daemon.wait_status(created["id"], "available")
    assert tenant["status_reason"] == ""
    base_url = await local_url(tenant_daemon, created["id"])
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/health") as response:
            assert response.status == 200


async def test_taken_port_moves_tenant(tenant_daemon):
    organization = await tenant_daemon.create_organization()
    created = await tenant_daemon.create_tenant(organization["id"], "alpha")
    await tenant_daemon.wait_status(created["id"], "available")
    old_url = await local_url(tenant_daemon, created["id"])
    response = await tenant_daemon.call(
        "PATCH", f"/api/v1/tenants/{created['id']}", json={"desired_state": "deactivated"}
    )
    assert response.status == 202
    await tenant_daemon.wait_status(created["id"], "deactivated")

    # Another program takes the tenant's port while it is deactivated.
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", int(old_url.rsplit(":", 1)[1])))
    squatter.listen()
    try:
        response = await tenant_daemon.call(
            "PATCH", f"/api/v1/tenants/{created['id']}", json={"desired_state": "available"}
        )
        assert response.status == 202
        await tenant_daemon.wait_status(created["id"], "available")
        new_url = await local_url(tenant_daemon, created["id"])
        assert new_url != old_url
        events = await tenant_daemon.call(
            "GET", f"/api/v1/tenants/{created['id']}/events?limit=1000"
        )
        messages = [event["message"] for event in events.body["items"]]
        assert any("taken by another program" in message for message in messages)
    finally:
        squatter.close()
