"""Tenant runtime that runs each ZenML server as a Docker container.

Per tenant the runtime owns three objects, all labelled with the daemon's
id: a named volume ``zenpro-<tenant id>`` mounted at ``/zenml`` (the
server's SQLite database and configuration), a bridge network of the same
name that no other tenant joins, and one container. Containers, networks
and volumes without this daemon's label are never changed or removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.models.networks import Network
from docker.models.volumes import Volume
from docker.types import LogConfig

from zenpro_local.images.builder import default_image
from zenpro_local.runtime.base import (
    LABEL_CONFIG_HASH,
    LABEL_DAEMON,
    LABEL_ORGANIZATION,
    LABEL_TENANT,
    LABEL_TENANT_NAME,
    SERVER_PORT,
    InstanceInfo,
    InstanceState,
    StopTimeouts,
    TenantRuntime,
    TenantRuntimeError,
    TenantSpec,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Mount point of the tenant's volume and path of its database inside it.
DATA_PATH = "/zenml"
DATABASE_NAME = "zenml.db"
DATABASE_PATH = f"{DATA_PATH}/{DATABASE_NAME}"

# SQLite's rollback journal and write-ahead log next to the database.
_DATABASE_SIDE_FILES = (f"{DATABASE_NAME}-journal", f"{DATABASE_NAME}-wal")

# Trusting X-Forwarded-* from any peer is safe because the port is published
# on 127.0.0.1 only, where Caddy is the peer. URLs the server builds then
# carry the tenant's HTTPS host name.
SERVER_COMMAND = [
    "uvicorn",
    "zenml.zen_server.zen_server_api:app",
    "--host",
    "0.0.0.0",
    "--port",
    str(SERVER_PORT),
    "--proxy-headers",
    "--forwarded-allow-ips",
    "*",
]

# The image may have no curl, but every ZenML image has Python.
_HEALTH_PROBE = (
    "import urllib.request; "
    f"urllib.request.urlopen('http://127.0.0.1:{SERVER_PORT}/health', timeout=4)"
)
_SECOND_NS = 1_000_000_000
HEALTHCHECK = {
    "test": ["CMD", "python3", "-c", _HEALTH_PROBE],
    "interval": 10 * _SECOND_NS,
    "timeout": 5 * _SECOND_NS,
    "retries": 3,
    "start_period": 60 * _SECOND_NS,
}

# unless-stopped brings tenants back after a host reboot or an engine
# restart, before the daemon itself starts, and restarts a crashed server.
# A container the daemon stopped stays stopped, because any signal sent
# through the engine marks the container as stopped by hand.
RESTART_POLICY = {"Name": "unless-stopped"}

# Bounded json-file logs, so a chatty server cannot fill the disk.
LOG_CONFIG = LogConfig(
    type=LogConfig.types.JSON, config={"max-size": "10m", "max-file": "3"}
)

# Docker's container states that mean a process may still run.
_ACTIVE_STATUSES = {"running", "restarting", "paused"}
# Exit codes of a server ended by SIGINT, SIGTERM or SIGKILL, or cleanly.
_STOPPED_EXIT_CODES = {0, 130, 137, 143}

_STOP_POLL_SECONDS = 0.2
_DEFAULT_PULL_TIMEOUT = 120.0


def resource_name(tenant_id: str) -> str:
    """Return the name of the tenant's volume and network."""
    return f"zenpro-{tenant_id}"


def container_name(spec: TenantSpec) -> str:
    """Return a container name that a person can match to the tenant."""
    readable = re.sub(r"[^a-zA-Z0-9_.-]+", "-", spec.name).strip("-.")[:40]
    return f"zenpro-{readable or 'tenant'}-{spec.tenant_id[:8]}"


class DockerRuntime(TenantRuntime):
    """Runs each tenant's ZenML server as a container on one Docker engine.

    Args:
        client: Docker client to use. When omitted, one is made on first use
            from ``base_url`` or the environment (``DOCKER_HOST``), so the
            runtime can be built while the engine is still down.
        daemon_id: Value of the daemon label on every object this runtime
            creates; objects with another value are left alone.
        data_dir: Folder for temporary files of snapshots and restores.
        base_url: Docker engine address, such as ``unix:///var/run/docker.sock``.
        allow_pull: Pull a missing image from its registry before failing.
            Off by default, because the default image name points at Docker
            Hub, and offline hosts build the image instead.
        pull_timeout: Seconds to wait for a pull before giving up.
    """

    kind = "docker"

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        daemon_id: str,
        data_dir: Path,
        base_url: str | None = None,
        allow_pull: bool = False,
        pull_timeout: float = _DEFAULT_PULL_TIMEOUT,
    ) -> None:
        if not daemon_id:
            raise ValueError("daemon_id must not be empty")
        self.daemon_id = daemon_id
        self.data_dir = data_dir
        self.allow_pull = allow_pull
        self.pull_timeout = pull_timeout
        self._client = client
        self._client_lock = threading.Lock()
        self._base_url = base_url
        # Own threads, so long stops cannot starve the loop's default executor.
        self._executor = ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="docker-runtime"
        )

    # -- lifecycle ---------------------------------------------------------

    async def create(self, spec: TenantSpec) -> None:
        """Create the tenant's volume, network and container, unstarted.

        Idempotent: a container with the same configuration hash is kept. One
        with another hash is stopped, removed and created anew; the volume
        and its data are kept.

        Raises:
            TenantRuntimeError: The image is missing, the volume or network
                belongs to something else, or the engine failed.
        """
        _check_environment(spec)
        await self._call(self._ensure_volume, spec)
        await self._call(self._ensure_network, spec)

        existing = await self._call(self._find_container, spec.tenant_id)
        if existing is not None:
            if existing.labels.get(LABEL_CONFIG_HASH) == spec.config_hash():
                return

        # Checked before the old container goes, so a missing image leaves
        # the tenant running as it was.
        image = spec.image or default_image(spec.zenml_version)
        await self.ensure_image(image, zenml_version=spec.zenml_version)

        if existing is not None:
            logger.info(
                "Replacing container %s of tenant %s: its configuration changed",
                existing.name,
                spec.tenant_id,
            )
            await self._stop_container(existing, spec.tenant_id, StopTimeouts())
            await self._call(self._remove_container, existing)
        await self._call(self._create_container, spec, image)

    async def start(self, spec: TenantSpec) -> None:
        """Start the tenant's container; no-op if it runs.

        Raises:
            TenantRuntimeError: No container exists (call :meth:`create`), or
                the engine failed to start it.
        """
        container = await self._call(self._find_container, spec.tenant_id)
        if container is None:
            raise TenantRuntimeError(
                f"Tenant {spec.tenant_id} has no container; create it first"
            )
        if container.status in _ACTIVE_STATUSES:
            return

        logger.info(
            "Starting container %s of tenant %s", container.name, spec.tenant_id
        )
        action = f"starting container {container.name}"
        await self._call(self._docker, action, container.start)

    async def stop(self, tenant_id: str, timeouts: StopTimeouts) -> None:
        """Stop the tenant's container: SIGINT, then SIGTERM, then SIGKILL.

        No-op if no container runs. Keeps the container and its data.

        Raises:
            TenantRuntimeError: The container still runs after SIGKILL, or
                the engine failed.
        """
        container = await self._call(self._find_container, tenant_id)
        if container is not None:
            await self._stop_container(container, tenant_id, timeouts)

    async def remove(self, tenant_id: str) -> None:
        """Stop and remove the tenant's container and network; keep the volume.

        Idempotent: succeeds when they are already gone.
        """
        container = await self._call(self._find_container, tenant_id)
        if container is not None:
            await self._stop_container(container, tenant_id, StopTimeouts())
            await self._call(self._remove_container, container)
        await self._call(self._remove_network, tenant_id)

    async def purge(self, tenant_id: str) -> None:
        """Delete the tenant's volume and everything in it.

        Idempotent: succeeds when the volume is gone.

        Raises:
            TenantRuntimeError: A container still uses the volume, or the
                volume does not carry this daemon's label.
        """
        await self._call(self._remove_volume, tenant_id)

    # -- observation -------------------------------------------------------

    async def inspect(self, tenant_id: str) -> InstanceInfo:
        """Return the state of the tenant's container (``MISSING`` if none)."""
        container = await self._call(self._find_container, tenant_id)
        if container is None:
            return InstanceInfo(tenant_id=tenant_id, state=InstanceState.MISSING)
        return _instance_info(container)

    async def list_instances(self) -> list[InstanceInfo]:
        """Return every container this daemon created, in any state."""
        containers = await self._call(self._list_containers)
        return [_instance_info(container) for container in containers]

    async def list_data(self) -> list[str]:
        """Return the ids of tenants whose volume exists."""
        volumes = await self._call(self._list_volumes)
        return sorted(
            volume.attrs["Labels"][LABEL_TENANT]
            for volume in volumes
            if volume.attrs.get("Labels", {}).get(LABEL_TENANT)
        )

    async def list_networks(self) -> list[str]:
        """Return the ids of tenants whose network exists."""
        networks = await self._call(self._list_networks)
        return sorted(
            network.attrs["Labels"][LABEL_TENANT]
            for network in networks
            if network.attrs.get("Labels", {}).get(LABEL_TENANT)
        )

    async def logs(self, tenant_id: str, tail: int = 100) -> str:
        """Return the last ``tail`` lines of the server's output ("" if none)."""
        container = await self._call(self._find_container, tenant_id)
        if container is None:
            return ""
        output = await self._call(
            self._docker, "reading logs", container.logs, tail=tail
        )
        return output.decode("utf-8", errors="replace")

    async def remove_orphans(self, known_tenant_ids: Collection[str]) -> list[str]:
        """Remove labelled containers and networks of tenants not in the set.

        Volumes are never removed here, so a tenant deleted from the state
        database by mistake keeps its data until :meth:`purge`.

        Returns:
            Names of the removed containers and networks.
        """
        known = set(known_tenant_ids)
        removed: list[str] = []

        for container in await self._call(self._list_containers):
            tenant_id = container.labels.get(LABEL_TENANT, "")
            if tenant_id in known:
                continue
            logger.info(
                "Removing orphaned container %s of unknown tenant %s",
                container.name,
                tenant_id,
            )
            await self._stop_container(container, tenant_id, StopTimeouts())
            await self._call(self._remove_container, container)
            removed.append(container.name)

        for network in await self._call(self._list_networks):
            tenant_id = network.attrs.get("Labels", {}).get(LABEL_TENANT, "")
            if tenant_id in known:
                continue
            logger.info(
                "Removing orphaned network %s of unknown tenant %s",
                network.name,
                tenant_id,
            )
            await self._call(self._docker, "removing a network", network.remove)
            removed.append(network.name)
        return removed

    # -- images ------------------------------------------------------------

    async def image_present(self, image: str) -> bool:
        """Return whether the engine has ``image`` locally."""
        return await self._call(self._image_present, image)

    async def ensure_image(self, image: str, zenml_version: str = "") -> None:
        """Make sure ``image`` is present, pulling it if pulls are allowed.

        Raises:
            TenantRuntimeError: The image is missing and could not be pulled;
                the message names the command that builds it offline.
        """
        if await self.image_present(image):
            return

        pull_error = ""
        # NOTE: no test runs this pull, as the test machines reach no registry.
        # On a timeout the pull goes on in its thread until the engine ends it.
        if self.allow_pull:
            logger.info("Pulling image %s", image)
            try:
                await asyncio.wait_for(
                    self._call(self._pull_image, image), self.pull_timeout
                )
                return
            except asyncio.TimeoutError:
                pull_error = f"the pull timed out after {self.pull_timeout:.0f} s"
            except TenantRuntimeError as error:
                pull_error = str(error)
            logger.warning("Pulling image %s failed: %s", image, pull_error)

        version = zenml_version or image.rsplit(":", 1)[-1]
        command = f"zenpro-local image build --zenml-version {version}"
        if image != default_image(version):
            command += f" --tag {image}"
        reason = f" and pulling it failed ({pull_error})" if pull_error else ""
        raise TenantRuntimeError(
            f"Image {image} is not present in the Docker engine{reason}. "
            f"Build it offline with: {command}"
        )

    # -- snapshots ---------------------------------------------------------

    async def snapshot(self, tenant_id: str, destination: Path) -> None:
        """Copy the tenant's SQLite database to ``destination``.

        The copy is made through SQLite's backup API from the database and
        any journal left next to it, so it is consistent even after a kill.

        Raises:
            TenantRuntimeError: No stopped container exists for the tenant,
                or the server has not created its database yet.
        """
        await self._call(self._snapshot, tenant_id, destination)

    async def restore(self, tenant_id: str, source: Path) -> None:
        """Replace the tenant's SQLite database with the file ``source``.

        Raises:
            TenantRuntimeError: ``source`` is not a valid SQLite database, or
                no stopped container exists for the tenant.
        """
        await self._call(self._restore, tenant_id, source)

    async def close(self) -> None:
        """Close the Docker client and the runtime's threads."""
        if self._client is not None:
            await self._call(self._client.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- blocking helpers, run in the executor -----------------------------

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(function, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    @property
    def client(self) -> docker.DockerClient:
        """Docker client, connected on first use."""
        with self._client_lock:
            if self._client is None:
                self._client = self._connect()
        return self._client

    def _connect(self) -> docker.DockerClient:
        with _translate_errors("connecting to the Docker engine"):
            if self._base_url:
                return docker.DockerClient(base_url=self._base_url)
            return docker.from_env()

    def _docker(self, action: str, function: Callable[..., T], *args, **kwargs) -> T:
        """Call one Docker SDK function, translating its errors."""
        with _translate_errors(action):
            return function(*args, **kwargs)

    def _labels(self, spec: TenantSpec) -> dict[str, str]:
        return {
            LABEL_DAEMON: self.daemon_id,
            LABEL_ORGANIZATION: spec.organization_id,
            LABEL_TENANT: spec.tenant_id,
            LABEL_TENANT_NAME: spec.name,
        }

    def _label_filter(self, tenant_id: str | None = None) -> dict[str, list[str]]:
        labels = [f"{LABEL_DAEMON}={self.daemon_id}"]
        if tenant_id is not None:
            labels.append(f"{LABEL_TENANT}={tenant_id}")
        return {"label": labels}

    def _list_containers(self, tenant_id: str | None = None) -> list[Container]:
        with _translate_errors("listing containers"):
            return self.client.containers.list(
                all=True, filters=self._label_filter(tenant_id), ignore_removed=True
            )

    def _find_container(self, tenant_id: str) -> Container | None:
        containers = self._list_containers(tenant_id)
        if len(containers) > 1:
            # create() replaces a container before making one, so a second
            # one came from elsewhere. Docker lists the newest first.
            logger.warning(
                "Tenant %s has %d containers: %s",
                tenant_id,
                len(containers),
                ", ".join(container.name for container in containers),
            )
        return containers[0] if containers else None

    def _list_volumes(self) -> list[Volume]:
        with _translate_errors("listing volumes"):
            return self.client.volumes.list(filters=self._label_filter())

    def _list_networks(self, tenant_id: str | None = None) -> list[Network]:
        with _translate_errors("listing networks"):
            return self.client.networks.list(filters=self._label_filter(tenant_id))

    def _check_owner(self, kind: str, name: str, labels: dict[str, str]) -> None:
        owner = (labels or {}).get(LABEL_DAEMON)
        if owner != self.daemon_id:
            raise TenantRuntimeError(
                f"A {kind} named {name} exists but was not created by this "
                f"daemon ({LABEL_DAEMON}={owner or 'unset'}); remove or rename it"
            )

    def _ensure_volume(self, spec: TenantSpec) -> Volume:
        name = resource_name(spec.tenant_id)
        with _translate_errors(f"creating volume {name}"):
            try:
                volume = self.client.volumes.get(name)
            except docker.errors.NotFound:
                logger.info("Creating volume %s of tenant %s", name, spec.tenant_id)
                return self.client.volumes.create(
                    name=name, driver="local", labels=self._labels(spec)
                )
        self._check_owner("volume", name, volume.attrs.get("Labels"))
        return volume

    def _ensure_network(self, spec: TenantSpec) -> Network:
        name = resource_name(spec.tenant_id)
        with _translate_errors(f"creating network {name}"):
            # Docker allows two networks with one name; match it exactly.
            for network in self.client.networks.list(names=[name]):
                if network.name == name:
                    self._check_owner("network", name, network.attrs.get("Labels"))
                    return network

            logger.info("Creating network %s of tenant %s", name, spec.tenant_id)
            return self.client.networks.create(
                name, driver="bridge", labels=self._labels(spec), check_duplicate=True
            )

    def _create_container(self, spec: TenantSpec, image: str) -> Container:
        name = container_name(spec)
        labels = {**self._labels(spec), LABEL_CONFIG_HASH: spec.config_hash()}
        memory = f"{spec.memory_limit_mb}m"
        environment = _server_environment(spec)

        logger.info(
            "Creating container %s of tenant %s from %s", name, spec.tenant_id, image
        )
        with _translate_errors(f"creating container {name}", environment.values()):
            return self.client.containers.create(
                image,
                command=SERVER_COMMAND,
                name=name,
                labels=labels,
                environment=environment,
                volumes={
                    resource_name(spec.tenant_id): {"bind": DATA_PATH, "mode": "rw"},
                    **{
                        host: {"bind": target, "mode": "ro"}
                        for host, target in spec.mounts.items()
                    },
                },
                network=resource_name(spec.tenant_id),
                ports={f"{SERVER_PORT}/tcp": ("127.0.0.1", spec.port)},
                extra_hosts=dict(spec.extra_hosts),
                mem_limit=memory,
                memswap_limit=memory,
                nano_cpus=int(spec.cpu_limit * _SECOND_NS),
                pids_limit=spec.pids_limit,
                healthcheck=HEALTHCHECK,
                restart_policy=RESTART_POLICY,
                stop_signal="SIGINT",
                log_config=LOG_CONFIG,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges:true"],
            )

    def _remove_container(self, container: Container) -> None:
        logger.info("Removing container %s", container.name)
        with _translate_errors(f"removing container {container.name}"):
            try:
                container.remove(v=False, force=True)
            except docker.errors.NotFound:
                pass

    def _remove_network(self, tenant_id: str) -> None:
        for network in self._list_networks(tenant_id):
            logger.info("Removing network %s of tenant %s", network.name, tenant_id)
            with _translate_errors(f"removing network {network.name}"):
                try:
                    network.remove()
                except docker.errors.NotFound:
                    pass

    def _remove_volume(self, tenant_id: str) -> None:
        name = resource_name(tenant_id)
        with _translate_errors(f"removing volume {name}"):
            try:
                volume = self.client.volumes.get(name)
            except docker.errors.NotFound:
                return
            self._check_owner("volume", name, volume.attrs.get("Labels"))

            logger.info("Deleting volume %s of tenant %s", name, tenant_id)
            try:
                volume.remove()
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                if error.status_code == 409:
                    raise TenantRuntimeError(
                        f"Volume {name} of tenant {tenant_id} is still used by a "
                        "container; remove the tenant's container first"
                    ) from error
                raise

    def _image_present(self, image: str) -> bool:
        with _translate_errors(f"inspecting image {image}"):
            try:
                self.client.images.get(image)
            except docker.errors.ImageNotFound:
                return False
        return True

    def _pull_image(self, image: str) -> None:
        repository, _, tag = image.rpartition(":")
        if not repository or "/" in tag:
            repository, tag = image, "latest"
        with _translate_errors(f"pulling image {image}"):
            self.client.images.pull(repository, tag=tag)

    # -- stop escalation ---------------------------------------------------

    async def _stop_container(
        self, container: Container, tenant_id: str, timeouts: StopTimeouts
    ) -> None:
        await self._call(self._reload_container, container)
        if container.status not in _ACTIVE_STATUSES:
            return

        # SIGINT lets uvicorn finish open requests and close the database.
        logger.info("Stopping container %s of tenant %s", container.name, tenant_id)
        await self._call(self._send_signal, container, "SIGINT")
        if await self._wait_until_stopped(container, timeouts.graceful):
            return

        # SIGTERM reaches servers that ignore SIGINT (another image's entrypoint).
        logger.warning(
            "Container %s of tenant %s still runs %.1f s after SIGINT; sending SIGTERM",
            container.name,
            tenant_id,
            timeouts.graceful,
        )
        await self._call(self._send_signal, container, "SIGTERM")
        if await self._wait_until_stopped(container, timeouts.terminate):
            return

        # SIGKILL cannot be caught; only a hung kernel call outlives it.
        logger.warning(
            "Container %s of tenant %s still runs %.1f s after SIGTERM; sending SIGKILL",
            container.name,
            tenant_id,
            timeouts.terminate,
        )
        await self._call(self._send_signal, container, "SIGKILL")
        if await self._wait_until_stopped(container, timeouts.kill):
            return

        raise TenantRuntimeError(
            f"Container {container.name} of tenant {tenant_id} still runs "
            f"{timeouts.kill:.1f} s after SIGKILL; check the Docker engine"
        )

    def _send_signal(self, container: Container, signal: str) -> None:
        with _translate_errors(f"sending {signal} to container {container.name}"):
            try:
                container.kill(signal=signal)
            except docker.errors.APIError as error:
                # The engine returns 409 when the container ended before the signal.
                if error.status_code != 409:
                    raise

    async def _wait_until_stopped(self, container: Container, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            await self._call(self._reload_container, container)
            if container.status not in _ACTIVE_STATUSES:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_STOP_POLL_SECONDS)

    def _reload_container(self, container: Container) -> None:
        with _translate_errors(f"inspecting container {container.name}"):
            try:
                container.reload()
            except docker.errors.NotFound:
                # A container removed meanwhile counts as stopped.
                container.attrs["State"] = {"Status": "removed"}

    # -- snapshot and restore ----------------------------------------------

    def _stopped_container(self, tenant_id: str, operation: str) -> Container:
        container = self._find_container(tenant_id)
        if container is None:
            raise TenantRuntimeError(
                f"Cannot {operation} tenant {tenant_id}: it has no container; "
                "create it first"
            )
        if container.status in _ACTIVE_STATUSES:
            raise TenantRuntimeError(
                f"Cannot {operation} tenant {tenant_id} while its server runs; "
                "stop it first"
            )
        return container

    def _snapshot(self, tenant_id: str, destination: Path) -> None:
        container = self._stopped_container(tenant_id, "snapshot")
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".partial")

        with self._scratch_dir() as scratch:
            for name in (DATABASE_NAME, *_DATABASE_SIDE_FILES):
                found = self._copy_out(container, f"{DATA_PATH}/{name}", scratch)
                if name == DATABASE_NAME and not found:
                    raise TenantRuntimeError(
                        f"Tenant {tenant_id} has no database yet: its server "
                        "creates it on the first start"
                    )

            # Opening the copy applies or rolls back a journal left by a kill.
            _sqlite_backup(scratch / DATABASE_NAME, partial)
        os.replace(partial, destination)
        logger.info("Saved a snapshot of tenant %s", tenant_id)

    def _copy_out(self, container: Container, path: str, target_dir: Path) -> bool:
        """Copy one file of a container into ``target_dir``; False if absent."""
        with _translate_errors(f"copying {path} out of {container.name}"):
            try:
                stream, _ = container.get_archive(path)
            except docker.errors.NotFound:
                return False

            reader = _ChunkReader(stream)
            with tarfile.open(fileobj=reader, mode="r|") as archive:
                member = archive.next()
                if member is None or not member.isfile():
                    raise TenantRuntimeError(
                        f"{path} in container {container.name} is not a file"
                    )
                source = archive.extractfile(member)
                with (target_dir / Path(path).name).open("wb") as target:
                    shutil.copyfileobj(source, target)
        return True

    def _restore(self, tenant_id: str, source: Path) -> None:
        _check_sqlite_file(source)
        container = self._stopped_container(tenant_id, "restore")
        uid, gid = self._data_owner(container)

        with self._scratch_dir() as scratch:
            archive_path = scratch / "restore.tar"
            with tarfile.open(archive_path, "w") as archive:
                archive.add(source, arcname=DATABASE_NAME, filter=_owned_by(uid, gid))
                # Empty journals, so SQLite applies no stale one to this file.
                for name in _DATABASE_SIDE_FILES:
                    info = tarfile.TarInfo(name)
                    info.uid, info.gid, info.mode = uid, gid, 0o644
                    info.mtime = int(time.time())
                    archive.addfile(info, io.BytesIO())

            with _translate_errors(f"copying the database into {container.name}"):
                with archive_path.open("rb") as data:
                    container.put_archive(DATA_PATH, data)
        logger.info("Restored the database of tenant %s", tenant_id)

    def _data_owner(self, container: Container) -> tuple[int, int]:
        """Return the uid and gid that own the data folder in the volume."""
        with _translate_errors(f"inspecting {DATA_PATH} in {container.name}"):
            stream, _ = container.get_archive(DATA_PATH)
            try:
                # The folder's own entry comes first, so reading stops there.
                reader = _ChunkReader(stream)
                with tarfile.open(fileobj=reader, mode="r|") as archive:
                    folder = archive.next()
            finally:
                stream.close()

        if folder is None:
            raise TenantRuntimeError(
                f"{DATA_PATH} in container {container.name} returned an empty archive"
            )
        return folder.uid, folder.gid

    @contextlib.contextmanager
    def _scratch_dir(self) -> Iterator[Path]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="snapshot-", dir=self.data_dir) as path:
            yield Path(path)


# -- module helpers ----------------------------------------------------------


def _server_environment(spec: TenantSpec) -> dict[str, str]:
    """Merge the spec's environment with the deployment's own variables.

    The deployment variables win, so a spec cannot move the database out of
    the tenant's volume.
    """
    return {
        **spec.environment,
        "ZENML_STORE_URL": f"sqlite:///{DATABASE_PATH}",
        "ZENML_CONFIG_PATH": f"{DATA_PATH}/.zenconfig",
        "ZENML_ANALYTICS_OPT_IN": "false",
    }


def _check_environment(spec: TenantSpec) -> None:
    # Docker echoes an invalid variable, value included, in its error.
    for key in spec.environment:
        if not key or "=" in key or "\0" in key:
            raise TenantRuntimeError(
                f"Invalid environment variable name {key!r} for tenant {spec.tenant_id}"
            )


def _instance_info(container: Container) -> InstanceInfo:
    state = container.attrs.get("State", {})
    status = state.get("Status", container.status)
    running = status in _ACTIVE_STATUSES

    return InstanceInfo(
        tenant_id=container.labels.get(LABEL_TENANT, ""),
        state=_instance_state(status, state),
        config_hash=container.labels.get(LABEL_CONFIG_HASH, ""),
        started_at=state.get("StartedAt", "") if running else "",
        restart_count=container.attrs.get("RestartCount", 0),
    )


def _instance_state(status: str, state: dict[str, Any]) -> InstanceState:
    if status in _ACTIVE_STATUSES:
        return InstanceState.RUNNING
    if status == "created":
        return InstanceState.CREATED
    # With the unless-stopped policy, Docker restarts a server that crashes,
    # so an exited container was mostly stopped by a signal sent on purpose.
    if state.get("OOMKilled") or state.get("ExitCode") not in _STOPPED_EXIT_CODES:
        return InstanceState.EXITED
    return InstanceState.CREATED


@contextlib.contextmanager
def _translate_errors(action: str, secrets: Iterable[str] = ()) -> Iterator[None]:
    """Turn Docker SDK errors into TenantRuntimeError with an actionable message.

    Args:
        action: What was being done, such as ``"creating volume zenpro-x"``.
        secrets: Values removed from the engine's message before it is shown.
    """
    action = action[:1].upper() + action[1:]
    try:
        yield
    except TenantRuntimeError:
        raise
    except docker.errors.ImageNotFound as error:
        message = _scrub(error.explanation or str(error), secrets)
        raise TenantRuntimeError(
            f"{action} failed: image not found ({message}). Build it offline "
            "with: zenpro-local image build --zenml-version VERSION"
        ) from error
    except docker.errors.APIError as error:
        message = _scrub(error.explanation or str(error), secrets)
        raise TenantRuntimeError(
            f"{action} failed: the Docker engine returned {error.status_code}: "
            f"{message}"
        ) from error
    except requests.Timeout as error:
        raise TenantRuntimeError(
            f"{action} failed: the Docker engine did not respond in time"
        ) from error
    except (requests.ConnectionError, docker.errors.DockerException) as error:
        raise TenantRuntimeError(
            f"{action} failed: cannot reach the Docker engine ({error}); check "
            "that dockerd runs and that DOCKER_HOST or docker.url points at it"
        ) from error


def _scrub(message: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        # Short values ("1", "false") would blank out ordinary words.
        if len(secret) >= 6:
            message = message.replace(secret, "***")
    return message


class _ChunkReader(io.RawIOBase):
    """Read-only file over an iterator of byte chunks, such as an archive."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk

        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def _owned_by(uid: int, gid: int) -> Callable[[tarfile.TarInfo], tarfile.TarInfo]:
    def set_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mode = 0o644
        return info

    return set_owner


def _check_sqlite_file(path: Path) -> None:
    """Raise unless ``path`` is an intact SQLite database with tables."""
    if not path.is_file():
        raise TenantRuntimeError(f"Database file {path} not found")

    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            check = connection.execute("PRAGMA quick_check").fetchone()
            tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise TenantRuntimeError(
            f"{path} is not a readable SQLite database: {error}"
        ) from error

    if check != ("ok",):
        raise TenantRuntimeError(f"{path} failed SQLite's quick_check: {check[0]}")
    # SQLite opens an empty file as an empty database, and restoring one
    # would wipe the tenant.
    if tables == (0,):
        raise TenantRuntimeError(f"{path} is an empty SQLite database")


def _sqlite_backup(source: Path, destination: Path) -> None:
    destination.unlink(missing_ok=True)
    try:
        source_db = sqlite3.connect(source)
        destination_db = sqlite3.connect(destination)
        try:
            source_db.backup(destination_db)
        finally:
            destination_db.close()
            source_db.close()
    except sqlite3.Error as error:
        destination.unlink(missing_ok=True)
        raise TenantRuntimeError(
            f"Copying the database to {destination} failed: {error}"
        ) from error
