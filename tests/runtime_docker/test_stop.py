"""Stopping a tenant escalates from SIGINT to SIGTERM to SIGKILL."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from zenpro_local.runtime.base import (
    LABEL_DAEMON,
    LABEL_TENANT,
    InstanceState,
    StopTimeouts,
)

from .zenml_api import wait_for_health

pytestmark = pytest.mark.docker

# A process that ignores SIGINT and SIGTERM, like a hung server.
STUBBORN_SCRIPT = (
    "import signal, time; "
    "signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ignoring signals', flush=True); "
    "time.sleep(600)"
)


async def wait_for_log_line(container, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text.encode() not in container.logs():
        assert time.monotonic() < deadline, f"{text!r} not in the container's logs"
        await asyncio.sleep(0.2)


async def test_stop_escalates_to_sigkill(
    runtime, docker_engine, server_image, daemon_id, caplog
):
    tenant_id = "stubborn-" + daemon_id
    container = docker_engine.containers.run(
        server_image,
        command=["python3", "-c", STUBBORN_SCRIPT],
        name=f"zenpro-{tenant_id}",
        labels={LABEL_DAEMON: daemon_id, LABEL_TENANT: tenant_id},
        restart_policy={"Name": "unless-stopped"},
        detach=True,
    )
    await wait_for_log_line(container, "ignoring signals")
    caplog.set_level(logging.INFO, logger="zenpro_local.runtime.docker")

    started = time.monotonic()
    await runtime.stop(tenant_id, StopTimeouts(graceful=1, terminate=1, kill=10))
    elapsed = time.monotonic() - started

    container.reload()
    assert container.status == "exited"
    assert container.attrs["State"]["ExitCode"] == 137
    assert elapsed >= 2.0
    escalations = [
        r.getMessage() for r in caplog.records if "sending" in r.getMessage()
    ]
    assert len(escalations) == 2
    assert "sending SIGTERM" in escalations[0]
    assert "sending SIGKILL" in escalations[1]
    assert all(tenant_id in message for message in escalations)

    # unless-stopped must not bring back a container the daemon stopped.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        container.reload()
        assert container.status == "exited"
        await asyncio.sleep(0.3)
    assert container.attrs["RestartCount"] == 0


async def test_stop_ends_server_on_sigint(runtime, make_spec, docker_engine, caplog):
    spec = make_spec()
    await runtime.create(spec)
    await runtime.start(spec)
    await wait_for_health(runtime.address(spec))
    caplog.set_level(logging.INFO, logger="zenpro_local.runtime.docker")

    await runtime.stop(spec.tenant_id, StopTimeouts(graceful=20, terminate=5, kill=5))

    info = await runtime.inspect(spec.tenant_id)
    assert info.state is InstanceState.CREATED
    assert info.started_at == ""
    (container,) = docker_engine.containers.list(
        all=True, filters={"label": f"{LABEL_TENANT}={spec.tenant_id}"}
    )
    assert container.attrs["State"]["ExitCode"] == 0
    assert not [r for r in caplog.records if "sending" in r.getMessage()]
    assert "Application shutdown complete" in await runtime.logs(spec.tenant_id)
