"""The contract every tenant runtime implements.

A runtime turns a :class:`TenantSpec` into one running ZenML server that
listens on ``127.0.0.1:<spec.port>``, and reports on what it made. It owns
no state of its own beyond the objects it creates (containers, networks,
volumes, processes, data folders): the daemon's state database is the
source of truth, and the lifecycle code above the runtime decides what
should exist.

All methods are coroutines. Implementations run blocking work (Docker SDK
calls, file copies) off the event loop, so the admin API stays responsive
while a server starts.
"""

from __future__ import annotations

import abc
import enum
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

# Labels (Docker) or marker-file keys (process) that identify what the
# daemon created. Objects without LABEL_DAEMON are never touched.
LABEL_DAEMON = "io.zenpro-local.daemon"
LABEL_ORGANIZATION = "io.zenpro-local.organization-id"
LABEL_TENANT = "io.zenpro-local.tenant-id"
LABEL_TENANT_NAME = "io.zenpro-local.tenant-name"
LABEL_CONFIG_HASH = "io.zenpro-local.config-hash"

# Port the ZenML server listens on inside a container.
SERVER_PORT = 8080


class TenantRuntimeError(Exception):
    """A runtime operation failed; ``str(error)`` is fit to show a person."""


class InstanceState(enum.Enum):
    """State of one tenant's server as the runtime observes it."""

    MISSING = "missing"  # nothing exists for the tenant (or only its data)
    CREATED = "created"  # created but never started, or stopped
    RUNNING = "running"  # the process or container runs (healthy or not)
    EXITED = "exited"  # it ran and ended on its own (crash, OOM kill)


@dataclass(frozen=True)
class StopTimeouts:
    """Seconds to wait after each step of a stop before escalating.

    A stop sends SIGINT (graceful: uvicorn drains requests), then SIGTERM,
    then SIGKILL, waiting ``graceful``, ``terminate`` and ``kill`` seconds
    respectively for the server to end after each signal.
    """

    graceful: float = 10.0
    terminate: float = 5.0
    kill: float = 5.0


@dataclass(frozen=True)
class TenantSpec:
    """Everything a runtime needs to run one tenant's ZenML server.

    ``environment`` holds secrets (the JWT secret key among them): never log
    it or put it in an error message. ``config_hash()`` covers every field
    that requires a new container or process when it changes.
    """

    tenant_id: str
    organization_id: str
    name: str
    zenml_version: str
    port: int  # host port on 127.0.0.1, allocated by the daemon
    image: str = ""  # Docker image; ignored by the process runtime
    environment: dict[str, str] = field(default_factory=dict)
    memory_limit_mb: int = 1024
    cpu_limit: float = 1.0
    pids_limit: int = 512
    extra_hosts: dict[str, str] = field(default_factory=dict)
    # Host file -> path inside the container, mounted read-only; the process
    # runtime ignores it because its servers read host paths directly.
    mounts: dict[str, str] = field(default_factory=dict)

    def config_hash(self) -> str:
        """Return a short digest of the configuration, stable across runs."""
        payload = {
            "zenml_version": self.zenml_version,
            "port": self.port,
            "image": self.image,
            "environment": dict(sorted(self.environment.items())),
            "memory_limit_mb": self.memory_limit_mb,
            "cpu_limit": self.cpu_limit,
            "pids_limit": self.pids_limit,
            "extra_hosts": dict(sorted(self.extra_hosts.items())),
        }
        if self.mounts:
            payload["mounts"] = dict(sorted(self.mounts.items()))
        encoded = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]


@dataclass(frozen=True)
class InstanceInfo:
    """One tenant server as the runtime finds it, labelled by the daemon."""

    tenant_id: str
    state: InstanceState
    config_hash: str = ""
    started_at: str = ""  # ISO 8601, empty when not running
    restart_count: int = 0


class TenantRuntime(abc.ABC):
    """Runs tenants' ZenML servers: one implementation per kind of host.

    Every method is idempotent: calling ``create`` for a tenant that already
    exists with the same spec, or ``remove`` for one that is gone, succeeds
    without doing anything.
    """

    #: Short name used in settings and logs: "docker" or "process".
    kind: str = ""

    @abc.abstractmethod
    async def create(self, spec: TenantSpec) -> None:
        """Create the tenant's server (and its network and volume) unstarted.

        Existing data (volume or data folder) is reused, never emptied. An
        existing server whose configuration hash differs from ``spec`` is
        replaced. Raises :class:`TenantRuntimeError` on failure.
        """

    @abc.abstractmethod
    async def start(self, spec: TenantSpec) -> None:
        """Start the server created by :meth:`create`; no-op if running.

        Returns once the process runs, not once it is healthy: health is
        checked by the caller over HTTP at :meth:`address`.
        """

    @abc.abstractmethod
    async def stop(self, tenant_id: str, timeouts: StopTimeouts) -> None:
        """Stop the server, escalating SIGINT, SIGTERM, SIGKILL.

        No-op if it is not running. Keeps the server's data.
        """

    @abc.abstractmethod
    async def remove(self, tenant_id: str) -> None:
        """Remove the stopped server and its network; keep its data.

        Stops the server first if it still runs.
        """

    @abc.abstractmethod
    async def purge(self, tenant_id: str) -> None:
        """Delete the tenant's data (volume or data folder) for good.

        Call only after :meth:`remove`. Raises :class:`TenantRuntimeError` if a
        server still uses the data.
        """

    @abc.abstractmethod
    async def inspect(self, tenant_id: str) -> InstanceInfo:
        """Return what exists for one tenant (``MISSING`` if nothing)."""

    @abc.abstractmethod
    async def list_instances(self) -> list[InstanceInfo]:
        """Return every tenant server this daemon created, in any state."""

    @abc.abstractmethod
    async def list_data(self) -> list[str]:
        """Return the ids of tenants whose data (volume or folder) exists."""

    @abc.abstractmethod
    async def logs(self, tenant_id: str, tail: int = 100) -> str:
        """Return the last ``tail`` lines of the server's output."""

    @abc.abstractmethod
    async def snapshot(self, tenant_id: str, destination: Path) -> None:
        """Copy the tenant's SQLite database to ``destination``.

        The server must be stopped, so the copy is consistent.
        """

    @abc.abstractmethod
    async def restore(self, tenant_id: str, source: Path) -> None:
        """Replace the tenant's SQLite database with ``source``.

        The server must be stopped.
        """

    async def close(self) -> None:
        """Release clients and threads; running servers keep running."""

    def address(self, spec: TenantSpec) -> str:
        """Return the base URL at which the daemon reaches the server."""
        return f"http://127.0.0.1:{spec.port}"
