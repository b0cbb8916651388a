"""The tenant runtime for hosts without a Docker engine: one child process each.

Each tenant's ZenML server runs as ``<venv>/bin/python -m uvicorn ...`` from
the virtual environment of its ZenML version (see
:mod:`zenpro_local.runtime.venvs`), listening on ``127.0.0.1:<spec.port>``.
Its files live in ``<data_dir>/tenants/<tenant_id>/``:

- ``zenml.db``: the tenant's SQLite database, kept by :meth:`remove`;
- ``config/``: the server's ``ZENML_CONFIG_PATH``;
- ``server.log``: the server's stdout and stderr, appended on every start;
- ``server.pid``: the server's process id while it runs or after it crashed;
- ``instance.json``: the marker that records that the daemon created the instance,
  with the daemon id, the configuration hash and the identity of the process
  (its start time in clock ticks since boot, and the boot id). It contains
  no secret, because secrets reach the server only through its environment.

Servers run in their own session, so they outlive the daemon; a new daemon
adopts them from the pid and marker files. A pid counts as the tenant's
server only while ``/proc/<pid>/stat`` shows the recorded start time under
the recorded boot id, so a recycled pid is never taken for a tenant.

The process runtime enforces no memory, CPU or pids limit and ignores
``image`` and ``extra_hosts``: those :class:`TenantSpec` fields only matter
to the Docker runtime. The host must be Linux, because ``/proc`` is read.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zenpro_local.runtime.base import (
    InstanceInfo,
    InstanceState,
    StopTimeouts,
    TenantRuntime,
    TenantRuntimeError,
    TenantSpec,
)
from zenpro_local.runtime.venvs import VenvManager

logger = logging.getLogger(__name__)

DATABASE_NAME = "zenml.db"
CONFIG_DIR_NAME = "config"
LOG_NAME = "server.log"
PID_NAME = "server.pid"
MARKER_NAME = "instance.json"

# A log larger than this is moved to server.log.1 when the server starts.
LOG_ROTATE_BYTES = 10 * 1024 * 1024

# Seconds between checks while waiting for a server to exit.
_EXIT_POLL_INTERVAL = 0.1

_TENANT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class ProcessRuntime(TenantRuntime):
    """Runs each tenant's ZenML server as a local process.

    Args:
        data_dir: Folder that contains ``tenants/`` (and usually ``venvs/``).
        venvs: The manager of ZenML virtual environments, or the folder to
            keep them in.
        daemon_id: Id of the daemon that owns the servers; instances whose
            marker names another daemon are neither listed nor touched.
    """

    kind = "process"

    def __init__(
        self, data_dir: Path, venvs: VenvManager | Path, daemon_id: str
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        if not isinstance(venvs, VenvManager):
            venvs = VenvManager(Path(venvs))
        self.venvs = venvs
        self.daemon_id = daemon_id
        self._locks: dict[str, asyncio.Lock] = {}
        # Servers this object started. Holding the Popen objects keeps Python
        # from warning that a running child was garbage-collected.
        self._children: dict[str, subprocess.Popen] = {}

    @property
    def tenants_dir(self) -> Path:
        """Folder that contains one data folder per tenant."""
        return self.data_dir / "tenants"

    def tenant_dir(self, tenant_id: str) -> Path:
        """Return the data folder of ``tenant_id``.

        Raises:
            TenantRuntimeError: The id cannot be used as a folder name.
        """
        if not _TENANT_ID_PATTERN.fullmatch(tenant_id) or ".." in tenant_id:
            raise TenantRuntimeError(
                f"Invalid tenant id {tenant_id!r}: expected letters, digits, "
                "'.', '_' or '-', at most 128 characters."
            )
        return self.tenants_dir / tenant_id

    # Lifecycle.

    async def create(self, spec: TenantSpec) -> None:
        """Prepare the data folder and the virtual environment for ``spec``.

        Installs ZenML ``spec.zenml_version`` on first use, which can take
        minutes. A running server with another configuration hash is stopped,
        after the install, so an upgrade keeps the old server up meanwhile. An
        instance with the same hash keeps its state, EXITED included.
        """
        folder = self.tenant_dir(spec.tenant_id)
        async with self._lock(spec.tenant_id):
            await self.venvs.ensure_venv(spec.zenml_version)
            marker = await asyncio.to_thread(_read_json, folder / MARKER_NAME)
            state = self._observe(folder, marker)
            self._check_owner(spec.tenant_id, marker, state)

            config_hash = spec.config_hash()
            if self._is_own(marker) and marker.get("config_hash") == config_hash:
                await asyncio.to_thread(_make_folders, folder)
                return
            if state is InstanceState.RUNNING:
                logger.info(
                    "Tenant %s: configuration changed (%s -> %s); stopping its server",
                    spec.tenant_id,
                    marker["config_hash"],
                    config_hash,
                )
                await self._stop_locked(spec.tenant_id, StopTimeouts())

            await asyncio.to_thread(self._write_created, folder, spec)
        logger.info("Tenant %s: created in %s", spec.tenant_id, folder)

    async def start(self, spec: TenantSpec) -> None:
        """Start the tenant's server; no-op if it runs.

        Raises:
            TenantRuntimeError: The tenant was not created, or its port is in
                use.
        """
        folder = self.tenant_dir(spec.tenant_id)
        async with self._lock(spec.tenant_id):
            marker = await asyncio.to_thread(_read_own_marker, folder, self.daemon_id)
            if marker is None:
                raise TenantRuntimeError(
                    f"Tenant {spec.tenant_id} has not been created; create it "
                    "before starting it."
                )
            if self._observe(folder, marker) is InstanceState.RUNNING:
                return

            await self.venvs.ensure_venv(spec.zenml_version)
            await asyncio.to_thread(_check_port_free, spec.port, spec.tenant_id)
            pid = await asyncio.to_thread(self._spawn, spec, folder)
        logger.info(
            "Tenant %s: started ZenML %s as process %d on 127.0.0.1:%d",
            spec.tenant_id,
            spec.zenml_version,
            pid,
            spec.port,
        )

    async def stop(self, tenant_id: str, timeouts: StopTimeouts) -> None:
        """Stop the server, escalating SIGINT, SIGTERM, SIGKILL.

        Signals go to the server's process group. A server that already
        ended keeps its EXITED state.

        Raises:
            TenantRuntimeError: The server survived SIGKILL.
        """
        async with self._lock(tenant_id):
            await self._stop_locked(tenant_id, timeouts)

    async def remove(self, tenant_id: str) -> None:
        """Stop the server and delete its pid and marker files; keep the data."""
        folder = self.tenant_dir(tenant_id)
        async with self._lock(tenant_id):
            marker = await asyncio.to_thread(_read_own_marker, folder, self.daemon_id)
            if marker is None:
                return
            await self._stop_locked(tenant_id, StopTimeouts())
            (folder / PID_NAME).unlink(missing_ok=True)
            (folder / MARKER_NAME).unlink(missing_ok=True)
        logger.info("Tenant %s: removed; its data stays in %s", tenant_id, folder)

    async def purge(self, tenant_id: str) -> None:
        """Delete the tenant's data folder; no-op if it does not exist.

        Raises:
            TenantRuntimeError: A server still runs from the folder.
        """
        folder = self.tenant_dir(tenant_id)
        async with self._lock(tenant_id):
            if not folder.exists():
                return
            marker = await asyncio.to_thread(_read_json, folder / MARKER_NAME)
            if self._observe(folder, marker) is InstanceState.RUNNING:
                raise TenantRuntimeError(
                    f"Cannot purge tenant {tenant_id}: its server still runs "
                    f"(process {_read_pid(folder)}). Remove the tenant first."
                )
            await asyncio.to_thread(shutil.rmtree, folder)
        logger.info("Tenant %s: purged its data folder %s", tenant_id, folder)

    # Observation.

    async def inspect(self, tenant_id: str) -> InstanceInfo:
        """Return what exists for one tenant (``MISSING`` if nothing)."""
        folder = self.tenant_dir(tenant_id)
        return await asyncio.to_thread(self._inspect_folder, tenant_id, folder)

    async def list_instances(self) -> list[InstanceInfo]:
        """Return every tenant server this daemon created, in any state."""
        return await asyncio.to_thread(self._list_instances)

    async def list_data(self) -> list[str]:
        """Return the ids of tenants whose data folder exists."""
        if not self.tenants_dir.is_dir():
            return []
        return sorted(path.name for path in self.tenants_dir.iterdir() if path.is_dir())

    async def logs(self, tenant_id: str, tail: int = 100) -> str:
        """Return the last ``tail`` lines of ``server.log`` ("" if none)."""
        path = self.tenant_dir(tenant_id) / LOG_NAME
        return await asyncio.to_thread(_tail_file, path, tail)

    # Data.

    async def snapshot(self, tenant_id: str, destination: Path) -> None:
        """Copy the tenant's database to ``destination`` with SQLite's backup API.

        Raises:
            TenantRuntimeError: The server runs, or it never created a database.
        """
        folder = self.tenant_dir(tenant_id)
        async with self._lock(tenant_id):
            self._check_stopped(tenant_id, folder, "snapshot")
            database = folder / DATABASE_NAME
            if not database.is_file():
                raise TenantRuntimeError(
                    f"Cannot snapshot tenant {tenant_id}: it has no database yet "
                    "(its server creates one on first start)."
                )
            await asyncio.to_thread(_backup_database, database, Path(destination))
        logger.info("Tenant %s: saved a snapshot to %s", tenant_id, destination)

    async def restore(self, tenant_id: str, source: Path) -> None:
        """Replace the tenant's database with the SQLite database ``source``.

        Raises:
            TenantRuntimeError: The server runs, or ``source`` is not a
                readable SQLite database.
        """
        folder = self.tenant_dir(tenant_id)
        async with self._lock(tenant_id):
            self._check_stopped(tenant_id, folder, "restore")
            await asyncio.to_thread(_restore_database, Path(source), folder)
        logger.info("Tenant %s: restored its database from %s", tenant_id, source)

    async def close(self) -> None:
        """Forget the child processes; running servers keep running."""
        self._children.clear()

    # Hooks a subclass may override.

    def server_command(self, spec: TenantSpec, python: Path) -> list[str]:
        """Return the command line that runs the tenant's server."""
        return [
            str(python),
            "-m",
            "uvicorn",
            "zenml.zen_server.zen_server_api:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(spec.port),
        ]

    def server_environment(self, spec: TenantSpec, folder: Path) -> dict[str, str]:
        """Return the server's environment: a minimal base, then ``spec``'s.

        HOME is the tenant's folder, so anything the server caches in the home
        folder stays with the tenant. The daemon's own environment is not
        passed on, because it may hold the daemon's secrets.
        """
        venv_bin = self.venvs.venv_python(spec.zenml_version).parent
        base = {
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "HOME": str(folder),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_LOGGING_COLORS_DISABLED": "true",
            "ZENML_STORE_URL": f"sqlite:///{folder / DATABASE_NAME}",
            "ZENML_CONFIG_PATH": str(folder / CONFIG_DIR_NAME),
        }
        return {**base, **spec.environment}

    # Internals.

    def _lock(self, tenant_id: str) -> asyncio.Lock:
        return self._locks.setdefault(tenant_id, asyncio.Lock())

    def _observe(self, folder: Path, marker: dict[str, Any] | None) -> InstanceState:
        """Return the state that the marker and pid files show, for any daemon."""
        if marker is None:
            return InstanceState.MISSING
        pid = _read_pid(folder)
        if pid is None:
            return InstanceState.CREATED
        if pid == marker.get("pid") and _is_same_process(pid, marker):
            return InstanceState.RUNNING
        return InstanceState.EXITED

    def _inspect_folder(self, tenant_id: str, folder: Path) -> InstanceInfo:
        marker = _read_own_marker(folder, self.daemon_id)
        state = self._observe(folder, marker)
        if marker is None:
            return InstanceInfo(tenant_id=tenant_id, state=state)
        running = state is InstanceState.RUNNING
        return InstanceInfo(
            tenant_id=tenant_id,
            state=state,
            config_hash=marker.get("config_hash", ""),
            started_at=marker.get("started_at", "") if running else "",
        )

    def _list_instances(self) -> list[InstanceInfo]:
        if not self.tenants_dir.is_dir():
            return []
        instances = []
        for folder in sorted(self.tenants_dir.iterdir()):
            if not _TENANT_ID_PATTERN.fullmatch(folder.name):
                continue
            info = self._inspect_folder(folder.name, folder)
            if info.state is not InstanceState.MISSING:
                instances.append(info)
        return instances

    def _check_owner(
        self, tenant_id: str, marker: dict[str, Any] | None, state: InstanceState
    ) -> None:
        """Raise if another daemon's server runs from the tenant's folder."""
        if marker is None or self._is_own(marker):
            return
        if state is InstanceState.RUNNING:
            raise TenantRuntimeError(
                f"Tenant {tenant_id}'s folder is used by a server of another "
                f"daemon ({marker.get('daemon_id')!r}); stop that daemon's "
                "server first."
            )
        logger.warning(
            "Tenant %s: taking over the stopped instance of daemon %r",
            tenant_id,
            marker.get("daemon_id"),
        )

    def _check_stopped(self, tenant_id: str, folder: Path, action: str) -> None:
        marker = _read_json(folder / MARKER_NAME)
        if self._observe(folder, marker) is InstanceState.RUNNING:
            raise TenantRuntimeError(
                f"Cannot {action} tenant {tenant_id} while its server runs; "
                "stop it first."
            )

    def _is_own(self, marker: dict[str, Any] | None) -> bool:
        return marker is not None and marker.get("daemon_id") == self.daemon_id

    def _write_created(self, folder: Path, spec: TenantSpec) -> None:
        """Create the folders and write a marker without a process."""
        _make_folders(folder)
        (folder / PID_NAME).unlink(missing_ok=True)
        _write_json(folder / MARKER_NAME, self._marker(spec))

    def _marker(self, spec: TenantSpec) -> dict[str, Any]:
        return {
            "tenant_id": spec.tenant_id,
            "organization_id": spec.organization_id,
            "name": spec.name,
            "daemon_id": self.daemon_id,
            "config_hash": spec.config_hash(),
            "zenml_version": spec.zenml_version,
            "port": spec.port,
            "pid": None,
            "pid_start_time": None,
            "boot_id": None,
            "started_at": "",
        }

    def _spawn(self, spec: TenantSpec, folder: Path) -> int:
        """Start the server process and record it; return its pid."""
        python = self.venvs.venv_python(spec.zenml_version)
        log_path = folder / LOG_NAME
        _rotate_log(log_path)

        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        with open(log_path, "ab") as log:
            log.write(
                f"--- {started_at} starting ZenML {spec.zenml_version} on "
                f"127.0.0.1:{spec.port} ---\n".encode()
            )
            log.flush()
            process = subprocess.Popen(
                self.server_command(spec, python),
                cwd=folder,
                env=self.server_environment(spec, folder),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: the server outlives the daemon, and a stop
                # signals the whole process group.
                start_new_session=True,
            )
        self._children[spec.tenant_id] = process

        # The child is not reaped before we read it, so its stat is there.
        stat = _read_stat(process.pid)
        marker = {
            **self._marker(spec),
            "pid": process.pid,
            "pid_start_time": stat.start_time if stat else None,
            "boot_id": _boot_id(),
            "started_at": started_at,
        }
        _write_json(folder / MARKER_NAME, marker)
        _write_text(folder / PID_NAME, f"{process.pid}\n")
        return process.pid

    async def _stop_locked(self, tenant_id: str, timeouts: StopTimeouts) -> None:
        folder = self.tenant_dir(tenant_id)
        marker = await asyncio.to_thread(_read_own_marker, folder, self.daemon_id)
        if self._observe(folder, marker) is not InstanceState.RUNNING:
            return

        pid = marker["pid"]
        steps = (
            (signal.SIGINT, timeouts.graceful),
            (signal.SIGTERM, timeouts.terminate),
            (signal.SIGKILL, timeouts.kill),
        )
        for index, (signum, wait) in enumerate(steps):
            if index > 0:
                logger.warning(
                    "Tenant %s: server processes (group %d) still run %.1f s "
                    "after %s; sending %s",
                    tenant_id,
                    pid,
                    steps[index - 1][1],
                    steps[index - 1][0].name,
                    signum.name,
                )
            _signal_group(pid, signum)
            if await self._wait_for_exit(pid, marker, wait):
                break
        else:
            raise TenantRuntimeError(
                f"Tenant {tenant_id}'s server processes (group {pid}) still run "
                f"after SIGKILL; check them with 'ps -g {pid}'."
            )

        self._children.pop(tenant_id, None)
        (folder / PID_NAME).unlink(missing_ok=True)
        marker.update(pid=None, pid_start_time=None, boot_id=None, started_at="")
        await asyncio.to_thread(_write_json, folder / MARKER_NAME, marker)
        logger.info("Tenant %s: stopped its server (process %d)", tenant_id, pid)

    async def _wait_for_exit(
        self, pid: int, marker: dict[str, Any], timeout: float
    ) -> bool:
        """Wait until the server and its process group have ended.

        Returns False if something still runs after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while _is_same_process(pid, marker) or _group_has_members(pid):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_EXIT_POLL_INTERVAL)
        return True


class _Stat:
    """The fields of ``/proc/<pid>/stat`` that identify a process."""

    def __init__(self, state: str, process_group: int, start_time: int) -> None:
        self.state = state
        self.process_group = process_group
        self.start_time = start_time


def _read_stat(pid: int) -> _Stat | None:
    """Return a process's stat fields, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None

    # The command name (field 2) may contain spaces and parentheses, so the
    # fields are counted from the last ")". Field n is fields[n - 3].
    fields = text[text.rindex(")") + 2 :].split()
    return _Stat(
        state=fields[0], process_group=int(fields[2]), start_time=int(fields[19])
    )


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _is_same_process(pid: int, marker: dict[str, Any]) -> bool:
    """Return whether ``pid`` still is the live process the marker recorded."""
    stat = _read_stat(pid)
    if stat is None or marker.get("pid_start_time") != stat.start_time:
        return False
    if marker.get("boot_id") != _boot_id():
        return False
    return _is_running(pid, stat)


def _is_running(pid: int, stat: _Stat) -> bool:
    """Return whether a process runs, reaping it if it is our ended child.

    The kernel shows the main thread of a multi-threaded process as a zombie
    while its other threads are still exiting and holding its files open (a
    listening socket among them). So a zombie counts as ended only once it
    can be reaped or its other threads are gone.
    """
    if stat.state != "Z":
        return True
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        return reaped == 0
    except ChildProcessError:
        pass  # not our child: its own parent, or init, reaps it
    try:
        return os.listdir(f"/proc/{pid}/task") != [str(pid)]
    except FileNotFoundError:
        return False


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Send ``signum`` to the process group that the server ``pid`` leads.

    Only the process ``pid`` itself can create a group with that id, and the
    kernel does not reuse the id while the group has members, so the group
    belongs to the tenant's server.
    """
    try:
        os.killpg(pid, signum)
        return
    except ProcessLookupError:
        pass
    try:
        # No such group: the server moved to another one, so signal it alone.
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # ended between the check and the signal


def _group_has_members(process_group: int) -> bool:
    """Return whether a running process is in ``process_group``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _read_stat(pid)
        if stat and stat.process_group == process_group and _is_running(pid, stat):
            return True
    return False


def _check_port_free(port: int, tenant_id: str) -> None:
    """Raise :class:`TenantRuntimeError` if ``127.0.0.1:port`` is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # uvicorn sets SO_REUSEADDR too, so connections in TIME_WAIT from an
        # earlier server on the port do not count as "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            reason = "already in use" if error.errno == errno.EADDRINUSE else str(error)
            raise TenantRuntimeError(
                f"Cannot start tenant {tenant_id}: port {port} on 127.0.0.1 is "
                f"{reason}. Stop the program listening there or give the tenant "
                "another port."
            ) from None


def _make_folders(folder: Path) -> None:
    """Create the tenant's folder and its config folder, readable by us only."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / CONFIG_DIR_NAME).mkdir(exist_ok=True, mode=0o700)


def _read_pid(folder: Path) -> int | None:
    try:
        return int((folder / PID_NAME).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as error:
        logger.warning("Ignoring unreadable marker file %s: %s", path, error)
        return None


def _read_own_marker(folder: Path, daemon_id: str) -> dict[str, Any] | None:
    """Return the marker if it exists and names ``daemon_id``."""
    marker = _read_json(folder / MARKER_NAME)
    if marker is None or marker.get("daemon_id") != daemon_id:
        return None
    return marker


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, so readers never see half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    _write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def _rotate_log(path: Path) -> None:
    # NOTE: rotation happens only when the server starts, so one long-running
    # server can still grow its log past LOG_ROTATE_BYTES.
    if path.exists() and path.stat().st_size > LOG_ROTATE_BYTES:
        path.replace(path.with_name(path.name + ".1"))


def _tail_file(path: Path, lines: int) -> str:
    """Return the last ``lines`` lines of a text file, reading from its end."""
    if lines <= 0 or not path.is_file():
        return ""
    block_size = 64 * 1024
    with open(path, "rb") as file:
        end = file.seek(0, os.SEEK_END)
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= lines:
            position = max(0, position - block_size)
            file.seek(position)
            data = file.read(end - position)
    tail = data.decode(errors="replace").splitlines()[-lines:]
    return "\n".join(tail) + "\n" if tail else ""


def _backup_database(source: Path, destination: Path) -> None:
    """Copy a SQLite database with its backup API, then move it into place."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".partial")
    temporary.unlink(missing_ok=True)
    try:
        _sqlite_copy(source, temporary)
        temporary.replace(destination)
    finally:
        temporary.unlink(missing_ok=True)


def _restore_database(source: Path, folder: Path) -> None:
    """Check that ``source`` is a SQLite database and copy it over zenml.db."""
    if not source.is_file():
        raise TenantRuntimeError(f"Cannot restore from {source}: no such file.")
    try:
        connection = sqlite3.connect(f"{source.absolute().as_uri()}?mode=ro", uri=True)
        try:
            result = connection.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise TenantRuntimeError(
            f"Cannot restore from {source}: not a readable SQLite database ({error})."
        ) from None
    if result != "ok":
        raise TenantRuntimeError(
            f"Cannot restore from {source}: the database is damaged ({result})."
        )

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    database = folder / DATABASE_NAME
    temporary = folder / f"{DATABASE_NAME}.partial"
    temporary.unlink(missing_ok=True)
    try:
        _sqlite_copy(source, temporary)
        # Journal files of the old database would corrupt the new one.
        for suffix in ("-wal", "-shm", "-journal"):
            (folder / f"{DATABASE_NAME}{suffix}").unlink(missing_ok=True)
        temporary.replace(database)
    finally:
        temporary.unlink(missing_ok=True)


def _sqlite_copy(source: Path, destination: Path) -> None:
    """Copy a database through SQLite's backup API, opening the source read-only."""
    reader = sqlite3.connect(f"{source.absolute().as_uri()}?mode=ro", uri=True)
    try:
        writer = sqlite3.connect(destination)
        try:
            reader.backup(writer)
        finally:
            writer.close()
    finally:
        reader.close()
