"""Upgrading a tenant's ZenML version, and rolling back a failed upgrade.

With Docker each ZenML version is an image, the older one built offline
once per machine; with local processes each version is a virtual
environment, made once per machine in the test cache.
"""

from __future__ import annotations

import asyncio
import io
import random

import docker
import pytest

from tests.conftest import cache_dir
from tests.lifecycle.conftest import IMAGE
from tests.lifecycle.test_tenant_lifecycle import (
    local_url,
    new_api_key,
    tag_names,
    write_tag,
)

OLD_VERSION = "0.97.0"
OLD_IMAGE = f"zenmldocker/zenml-server:{OLD_VERSION}"
# A version whose image starts no server: the failure a bad upgrade meets.
# Its patch number differs per run, so runs at once never share the tag.
BROKEN_VERSION = f"9.9.{random.randrange(1000)}"
BROKEN_IMAGE = f"zenmldocker/zenml-server:{BROKEN_VERSION}"

@pytest.fixture
def old_version(runtime_kind: str, request) -> str:
    """The older ZenML version, installed for the runtime under test."""
    if runtime_kind == "docker":
        client = request.getfixturevalue("docker_client")
        try:
            client.images.get(OLD_IMAGE)
        except docker.errors.ImageNotFound:
            from zenpro_local.images import build_image, default_work_dir

            build_image(OLD_VERSION, OLD_IMAGE, default_work_dir(), client=client)
    else:
        from zenpro_local.runtime.venvs import VenvManager

        asyncio.run(VenvManager(cache_dir() / "venvs").ensure_venv(OLD_VERSION))
    return OLD_VERSION


@pytest.fixture
def broken_version(runtime_kind: str, request):
    """A version whose server cannot start: the failure a bad upgrade meets.

    For Docker it is an image whose server exits at once; for local
    processes no such ZenML release exists, so its install fails.
    """
    if runtime_kind == "process":
        yield BROKEN_VERSION, BROKEN_VERSION
        return
    client = request.getfixturevalue("docker_client")
    dockerfile = (
        f"FROM {IMAGE}\n"
        'ENTRYPOINT ["sh", "-c", "echo broken server >&2; exit 3"]\n'
    )
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=BROKEN_IMAGE, rm=True)
    yield BROKEN_VERSION, "broken server"
    try:
        client.images.remove(BROKEN_IMAGE, force=True)
    except docker.errors.ImageNotFound:
        pass


async def create_available(tenant_daemon, version: str) -> dict:
    organization = await tenant_daemon.create_organization()
    response = await tenant_daemon.call(
        "POST",
        f"/api/v1/organizations/{organization['id']}/tenants",
        json={"name": "alpha", "zenml_version": version},
    )
    assert response.status == 202, response.body
    return await tenant_daemon.wait_status(response.body["id"], "available")


async def upgrade(tenant_daemon, tenant_id: str, version: str) -> dict:
    response = await tenant_daemon.call(
        "PATCH", f"/api/v1/tenants/{tenant_id}", json={"zenml_version": version}
    )
    assert response.status == 202, response.body
    return await tenant_daemon.wait_status(tenant_id, "available")


async def server_version(base_url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/api/v1/info") as response:
            return (await response.json())["version"]


async def test_upgrade_keeps_data(tenant_daemon, old_version):
    tenant = await create_available(tenant_daemon, old_version)
    base_url = await local_url(tenant_daemon, tenant["id"])
    api_key = await new_api_key(tenant_daemon, tenant["id"])
    await write_tag(base_url, api_key, "kept-through-upgrade")
    assert await server_version(base_url) == OLD_VERSION

    upgraded = await upgrade(tenant_daemon, tenant["id"], "0.98.0")

    assert upgraded["zenml_version"] == "0.98.0"
    assert upgraded["status_reason"] == ""
    assert await server_version(base_url) == "0.98.0"
    assert "kept-through-upgrade" in await tag_names(base_url, api_key)
    snapshots = list((tenant_daemon.data_dir / "snapshots" / tenant["id"]).iterdir())
    assert [path.name.endswith(f"-{OLD_VERSION}.db") for path in snapshots] == [True]


async def test_failed_upgrade_rolls_back(tenant_daemon, broken_version):
    version, symptom = broken_version
    tenant = await create_available(tenant_daemon, "0.98.0")
    base_url = await local_url(tenant_daemon, tenant["id"])
    api_key = await new_api_key(tenant_daemon, tenant["id"])
    await write_tag(base_url, api_key, "kept-through-rollback")

    after = await upgrade(tenant_daemon, tenant["id"], version)

    assert after["zenml_version"] == "0.98.0"
    assert "rolled back" in after["status_reason"]
    assert symptom in after["status_reason"]
    assert await server_version(base_url) == "0.98.0"
    assert "kept-through-rollback" in await tag_names(base_url, api_key)
    events = await tenant_daemon.call("GET", f"/api/v1/tenants/{tenant['id']}/events?limit=1000")
    assert "rolled_back" in [event["action"] for event in events.body["items"]]
