"""Checks on Docker objects that the runtime does not report itself."""

from __future__ import annotations

import asyncio
import time

import docker

from .zenml_api import HEALTH_TIMEOUT


async def wait_for_docker_health(
    client: docker.DockerClient, container_id: str, timeout: float = HEALTH_TIMEOUT
) -> str:
    """Poll the container's Docker health status until it leaves "starting"."""
    deadline = time.monotonic() + timeout
    status = "unknown"
    while time.monotonic() < deadline:
        container = await asyncio.to_thread(client.containers.get, container_id)
        status = container.attrs["State"].get("Health", {}).get("Status", "none")
        if status != "starting":
            return status
        await asyncio.sleep(1)
    return status
