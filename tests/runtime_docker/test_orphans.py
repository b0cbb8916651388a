"""Removal of labelled objects whose tenant is not in the state database."""

from __future__ import annotations

import uuid

import pytest

from zenpro_local.runtime.base import InstanceState, TenantRuntimeError
from zenpro_local.runtime.docker import DockerRuntime, container_name, resource_name

pytestmark = pytest.mark.docker


async def test_remove_orphans_keeps_unlabelled(
    runtime, make_spec, docker_engine, server_image, created_containers
):
    known, orphan = make_spec(), make_spec()
    await runtime.create(known)
    await runtime.create(orphan)
    unlabelled_name = f"zenpro-test-unlabelled-{uuid.uuid4().hex[:8]}"
    created_containers.append(unlabelled_name)
    docker_engine.containers.create(server_image, name=unlabelled_name)

    removed = await runtime.remove_orphans({known.tenant_id})

    assert sorted(removed) == sorted(
        [container_name(orphan), resource_name(orphan.tenant_id)]
    )
    assert (await runtime.inspect(orphan.tenant_id)).state is InstanceState.MISSING
    assert (await runtime.inspect(known.tenant_id)).state is InstanceState.CREATED
    assert await runtime.list_networks() == [known.tenant_id]
    # Volumes are kept: only purge deletes data.
    assert orphan.tenant_id in await runtime.list_data()
    assert docker_engine.containers.get(unlabelled_name)

    assert await runtime.remove_orphans({known.tenant_id}) == []


async def test_other_daemon_sees_nothing(runtime, make_spec, docker_engine):
    spec = make_spec()
    await runtime.create(spec)
    other = DockerRuntime(
        daemon_id=f"test-other-{uuid.uuid4().hex[:8]}", data_dir=runtime.data_dir
    )
    try:
        assert await other.list_instances() == []
        assert await other.list_data() == []
        assert await other.remove_orphans(set()) == []
        with pytest.raises(TenantRuntimeError, match="not created by this daemon"):
            await other.create(spec)
    finally:
        await other.close()

    (info,) = await runtime.list_instances()
    assert info.tenant_id == spec.tenant_id
    assert docker_engine.volumes.get(resource_name(spec.tenant_id))
