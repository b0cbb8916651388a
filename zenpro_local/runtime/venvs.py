"""Virtual environments that hold one ZenML server version each.

The process runtime runs every tenant's server from a virtual environment
under ``<root>/zenml-<version>/``, created on first use with ``python -m
venv`` and ``pip install 'zenml[server]==<version>'``. Tenants on the same
version share it.

A completed environment contains a marker file, written last. A folder
without it is the leftover of a failed or interrupted install: the next
:meth:`VenvManager.ensure_venv` deletes and rebuilds it, and nothing runs
from it before. Environments are built in place, not in a temporary folder
renamed afterwards, because pip writes the folder's absolute path into the
console scripts it installs (``bin/zenml`` among them).

An asyncio lock per version, and an ``fcntl`` lock file for other processes
that share the root, make concurrent requests for one version build it once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from zenpro_local.runtime.base import TenantRuntimeError

logger = logging.getLogger(__name__)

# Written last into a completed environment.
MARKER_NAME = ".zenpro-venv.json"

# PEP 440 public and local versions: letters, digits, dots, "+", "!", "-", "_".
_VERSION_PATTERN = re.compile(r"[0-9][0-9A-Za-z.+!_-]*")

# Lines of pip output kept for an error message.
_ERROR_TAIL_LINES = 20

# Seconds between attempts to take another process's lock file.
_LOCK_POLL_INTERVAL = 0.5


class VenvError(TenantRuntimeError):
    """A virtual environment could not be created."""


class VenvManager:
    """Creates and finds one virtual environment per ZenML version.

    Args:
        root: Folder that contains the environments (``<data_dir>/venvs``).
        python: Interpreter that creates the environments; defaults to the
            one running the daemon.
        requirement: pip requirement with a ``{version}`` placeholder.
        pip_cache_dir: pip's download and wheel cache, shared by every
            install; pip's own default when ``None``.
        find_links: Folder of wheels (``pip download`` output) that pip
            searches before the package index.
        no_index: Install from ``find_links`` only, for machines without
            access to a package index.
        install_timeout: Seconds one ``pip install`` may take.
    """

    def __init__(
        self,
        root: Path,
        *,
        python: str | None = None,
        requirement: str = "zenml[server]=={version}",
        pip_cache_dir: Path | None = None,
        find_links: Path | None = None,
        no_index: bool = False,
        install_timeout: float = 1800.0,
    ) -> None:
        self.root = Path(root).absolute()
        self.python = python or sys.executable
        self.requirement = requirement
        self.pip_cache_dir = pip_cache_dir
        self.find_links = find_links
        self.no_index = no_index
        self.install_timeout = install_timeout
        self._locks: dict[str, asyncio.Lock] = {}

    def venv_path(self, version: str) -> Path:
        """Return the folder of ``version``'s environment, ready or not."""
        check_version(version)
        return self.root / f"zenml-{version}"

    def venv_python(self, version: str) -> Path:
        """Return the interpreter of ``version``'s environment."""
        return self.venv_path(version) / "bin" / "python"

    def is_ready(self, version: str) -> bool:
        """Return whether ``version``'s environment is completely installed."""
        return (self.venv_path(version) / MARKER_NAME).is_file()

    def list_versions(self) -> list[str]:
        """Return the versions whose environments are completely installed."""
        if not self.root.is_dir():
            return []
        versions = []
        for path in sorted(self.root.glob("zenml-*")):
            if (path / MARKER_NAME).is_file():
                versions.append(path.name.removeprefix("zenml-"))
        return versions

    async def ensure_venv(self, version: str) -> Path:
        """Create ``version``'s environment unless it is ready; return its path.

        Idempotent and safe to call concurrently: one call builds, the others
        wait for it and return the same path.

        Raises:
            VenvError: The install failed or timed out; the message names the
                version and ends with the tail of pip's output.
        """
        path = self.venv_path(version)
        if self.is_ready(version):
            return path

        lock = self._locks.setdefault(version, asyncio.Lock())
        async with lock:
            async with self._file_lock(version):
                if self.is_ready(version):
                    return path
                await self._build(version, path)
        return path

    async def remove(self, version: str) -> None:
        """Delete ``version``'s environment; no-op if it does not exist.

        Callers make sure no server runs from it.
        """
        path = self.venv_path(version)
        lock = self._locks.setdefault(version, asyncio.Lock())
        async with lock:
            async with self._file_lock(version):
                await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
        logger.info("Removed the virtual environment for ZenML %s", version)

    @contextlib.asynccontextmanager
    async def _file_lock(self, version: str):
        """Hold ``<root>/.zenml-<version>.lock`` against other processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.root / f".zenml-{version}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await self._acquire(fd, version)
            yield
        finally:
            # Closing the descriptor releases the lock.
            os.close(fd)

    async def _acquire(self, fd: int, version: str) -> None:
        """Poll the lock, so a cancelled task does not leave a blocked thread."""
        deadline = time.monotonic() + self.install_timeout
        waiting_logged = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise

            if not waiting_logged:
                logger.info(
                    "Waiting for another process to finish installing ZenML %s",
                    version,
                )
                waiting_logged = True
            if time.monotonic() > deadline:
                raise VenvError(
                    f"Timed out after {self.install_timeout:.0f} s waiting for "
                    f"another process installing ZenML {version} in {self.root}."
                )
            await asyncio.sleep(_LOCK_POLL_INTERVAL)

    async def _build(self, version: str, path: Path) -> None:
        """Create the environment at ``path`` and write its marker last."""
        if path.exists():
            logger.warning(
                "Deleting the incomplete virtual environment %s left by an "
                "earlier failed install",
                path,
            )
            await asyncio.to_thread(shutil.rmtree, path)

        started = time.monotonic()
        logger.info("Creating a virtual environment for ZenML %s in %s", version, path)
        try:
            venv_command = [self.python, "-m", "venv", str(path)]
            await self._run(version, "python -m venv", venv_command)
            pip_command = self._pip_install_command(version, path)
            await self._run(version, "pip install", pip_command)
            await self._check_installed(version, path)
        except BaseException as error:
            # Cancellation included: no half-made environment stays behind.
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
            if isinstance(error, VenvError):
                logger.error("Removed the incomplete environment %s: %s", path, error)
            raise

        self._write_marker(version, path)
        logger.info(
            "Installed ZenML %s in %s in %.0f s",
            version,
            path,
            time.monotonic() - started,
        )

    def _pip_install_command(self, version: str, path: Path) -> list[str]:
        command = [
            str(path / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
        ]
        if self.pip_cache_dir is not None:
            command += ["--cache-dir", str(self.pip_cache_dir)]
        if self.find_links is not None:
            command += ["--find-links", str(self.find_links)]
        if self.no_index:
            command.append("--no-index")
        command.append(self.requirement.format(version=version))
        return command

    async def _check_installed(self, version: str, path: Path) -> None:
        """Raise unless the environment reports the requested ZenML version."""
        script = "import importlib.metadata as m; print(m.version('zenml'))"
        command = [str(path / "bin" / "python"), "-c", script]
        output = await self._run(version, "the version check", command)
        installed = output.strip().splitlines()[-1] if output.strip() else ""
        if installed != version:
            raise VenvError(
                f"Installing ZenML {version} produced version {installed!r} "
                f"in {path}; check the requirement {self.requirement!r}."
            )

    async def _run(self, version: str, step: str, command: list[str]) -> str:
        """Run ``command``, log its output at debug level, and return it.

        ``step`` names the command in error messages.

        Raises:
            VenvError: The command failed or ran past ``install_timeout``.
        """
        logger.debug("Running %s", " ".join(command))
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        lines: list[str] = []
        try:
            await asyncio.wait_for(
                self._collect(process, version, lines), self.install_timeout
            )
        except TimeoutError:
            raise VenvError(
                f"Installing ZenML {version} timed out: {step} ran longer than "
                f"{self.install_timeout:.0f} s. Last output:\n{_tail(lines)}"
            ) from None
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

        if process.returncode != 0:
            raise VenvError(
                f"Installing ZenML {version} failed: {step} exited with status "
                f"{process.returncode}. Last output:\n{_tail(lines)}"
            )
        return "\n".join(lines)

    async def _collect(
        self, process: asyncio.subprocess.Process, version: str, lines: list[str]
    ) -> None:
        """Read the output into ``lines`` until the process ends."""
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            logger.debug("ZenML %s install: %s", version, line)
            if line.startswith(("Installing collected packages", "Successfully")):
                logger.info("ZenML %s install: %s", version, line[:200])
        await process.wait()

    def _write_marker(self, version: str, path: Path) -> None:
        marker = {
            "zenml_version": version,
            "requirement": self.requirement.format(version=version),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        temporary = path / f"{MARKER_NAME}.tmp"
        temporary.write_text(json.dumps(marker, indent=2) + "\n")
        temporary.replace(path / MARKER_NAME)


def check_version(version: str) -> None:
    """Raise :class:`VenvError` unless ``version`` is a plain version string.

    The version becomes part of a folder name and a pip requirement, so a
    value such as ``../x`` or ``1.0; rm`` must never get that far.
    """
    if not _VERSION_PATTERN.fullmatch(version) or ".." in version:
        raise VenvError(
            f"Invalid ZenML version {version!r}: expected a version such as '0.98.0'."
        )


def _tail(lines: list[str]) -> str:
    """Return the last lines of output, or a placeholder when there is none."""
    tail = collections.deque(lines, maxlen=_ERROR_TAIL_LINES)
    return "\n".join(tail) or "(no output)"
