"""Benchmarks of tenant provisioning through the daemon's admin API.

Subcommands, one command each (see bench/README.md):

- ``overhead``: time from a create request to ``available``, divided by the
  time a bare ``docker run`` of the same image takes until ``/health``
  returns 200, measured alternately in the same run, with a breakdown of
  where the daemon's time goes.
- ``concurrent``: ten tenants created at once, next to ten created one
  after another.

The daemon runs as a child process (``python -m zenpro_local serve``) on a
fresh data folder, so with a daemon id of its own. Every container, network
and volume carrying that id, or this run's own label for bare containers, is
removed when the benchmark ends, also after a failure or Ctrl-C.

The harness in this module (``BenchDaemon``, ``bench_run``,
``provision_tenants``, ``machine_facts``) is shared with
``tenant_restart.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import asynccontextmanager, closing, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import docker
import docker.errors

from zenpro_local import config
from zenpro_local.daemon import daemon_id
from zenpro_local.images.builder import default_image
from zenpro_local.runtime.base import LABEL_DAEMON, SERVER_PORT
from zenpro_local.runtime.docker import DATA_PATH, DATABASE_PATH, SERVER_COMMAND
from zenpro_local.tenants import zenml_api

REPO_ROOT = Path(__file__).resolve().parents[1]
ZENML_VERSION = "0.98.0"
BASE_DOMAIN = "zenml.localhost"

#: Label on the bare containers and volumes of one run, with the run's id.
RUN_LABEL = "zenpro-bench.run"

#: Interval of every poll this harness makes; it bounds each figure's error.
POLL_SECONDS = 0.05
DAEMON_START_TIMEOUT = 60.0
TENANT_TIMEOUT = 300.0
_HTTP_TIMEOUT = aiohttp.ClientTimeout(total=5)


class BenchError(Exception):
    """A benchmark step failed; the message names the step and the object."""


# -- the daemon under test -------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BenchDaemon:
    """The daemon as a child process, as an operator runs it, and its API.

    Args:
        data_dir: Fresh data folder; its daemon id labels every Docker object
            the daemon creates.
        settings: Extra settings as ``ZENPRO_*`` environment variables.
    """

    def __init__(self, data_dir: Path, settings: dict[str, str] | None = None):
        self.data_dir = data_dir
        # Written before the daemon starts, so cleanup has the label even
        # when the daemon never comes up.
        self.daemon_id = daemon_id(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.https_port = free_port()
        self.log_path = data_dir / "daemon.log"

        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("ZENPRO_")
        }
        self.environment = {
            **inherited,
            "ZENPRO_DATA_DIR": str(data_dir),
            "ZENPRO_LISTEN": f"127.0.0.1:{self.port}",
            "ZENPRO_RUNTIME": "docker",
            "ZENPRO_BASE_DOMAIN": BASE_DOMAIN,
            "ZENPRO_HTTPS_PORT": str(self.https_port),
            # Caddy listens on loopback only, like the tenants' servers.
            "ZENPRO_CADDY_BIND": "127.0.0.1",
            "ZENPRO_LOG_LEVEL": "info",
            **(settings or {}),
        }

        self.process: subprocess.Popen | None = None
        #: Epoch time of the last start, to compare with log timestamps.
        self.started_at = 0.0
        self.token = ""
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> float:
        """Start the daemon; return the seconds until ``/health`` returns 200.

        Raises:
            BenchError: The daemon exited, or ``/health`` timed out.
        """
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_HTTP_TIMEOUT)
        with open(self.log_path, "ab") as log:
            self.started_at = time.time()
            started = time.perf_counter()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "zenpro_local", "serve"],
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await self._wait_health()
        elapsed = time.perf_counter() - started

        self.token = (self.data_dir / "admin-token").read_text().strip()
        return elapsed

    async def _wait_health(self) -> None:
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"the daemon exited with code {self.process.returncode} "
                    f"before /health returned 200:\n{self.log_tail()}"
                )
            if await http_ok(self.session, f"{self.url}/health"):
                return
            await asyncio.sleep(POLL_SECONDS / 2)
        raise BenchError(
            f"timed out after {DAEMON_START_TIMEOUT:.0f} s waiting for the "
            f"daemon's /health:\n{self.log_tail()}"
        )

    async def terminate(self, timeout: float = 60.0) -> float:
        """Send SIGTERM and return the seconds until the daemon exited.

        Raises:
            BenchError: The daemon still ran after ``timeout`` seconds.
        """
        started = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"the daemon still runs {timeout:.0f} s after SIGTERM"
            ) from None
        return time.perf_counter() - started

    async def close(self) -> None:
        """Stop the daemon and its leftover children; close the HTTP session.

        The daemon gets SIGTERM, so it stops its Caddy, and SIGKILL if it
        still runs after 30 s. Caddy runs in a session of its own and
        outlives a killed daemon, so every process whose command line names
        the data folder is killed afterwards.
        """
        if self.process is not None and self.process.poll() is None:
            try:
                await self.terminate(timeout=30)
            except BenchError:
                self.process.kill()
                self.process.wait(timeout=30)
        for pid in processes_naming(self.data_dir):
            print(f"Killing leftover process {pid} of {self.data_dir}")
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "BenchDaemon.start() was not awaited"
        return self._session

    def log_tail(self, lines: int = 20) -> str:
        """Return the last ``lines`` lines of the daemon's log."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def log_lines(self, level: str) -> list[str]:
        """Return the log lines at ``level`` (such as ``ERROR``)."""
        if not self.log_path.exists():
            return []
        marker = f" {level} "
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if marker in line]

    # -- admin API

    async def call(self, method: str, path: str, json_body: Any = None) -> Any:
        """Send an admin API request and return the decoded JSON body.

        Raises:
            BenchError: The daemon returned an error status.
        """
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.request(
            method, self.url + path, json=json_body, headers=headers
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise BenchError(f"{method} {path} failed: {response.status} {text}")
            return json.loads(text) if text else None

    async def ca_pem(self) -> str:
        """Return the daemon's CA certificate, which signs the tenants' hosts."""
        async with self.session.get(f"{self.url}/api/v1/ca.pem") as response:
            if response.status != 200:
                raise BenchError(f"GET /api/v1/ca.pem failed: {response.status}")
            return await response.text()

    async def create_organization(self, name: str) -> str:
        body = await self.call("POST", "/api/v1/organizations", {"name": name})
        return body["id"]

    async def create_tenant(self, organization_id: str, name: str) -> str:
        path = f"/api/v1/organizations/{organization_id}/tenants"
        body = await self.call("POST", path, {"name": name})
        return body["id"]

    async def list_tenants(self) -> list[dict]:
        body = await self.call("GET", "/api/v1/tenants?limit=1000")
        return body["items"]

    async def events(self, tenant_id: str) -> list[dict]:
        body = await self.call("GET", f"/api/v1/tenants/{tenant_id}/events?limit=1000")
        return body["items"]

    async def wait_available(
        self, tenant_ids: Iterable[str], timeout: float = TENANT_TIMEOUT
    ) -> dict[str, float]:
        """Poll until every tenant is ``available`` with no operation.

        Returns:
            The epoch time at which each tenant was first seen available.

        Raises:
            BenchError: A tenant failed, or ``timeout`` seconds passed.
        """
        waiting = set(tenant_ids)
        seen: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while waiting:
            rows = {row["id"]: row for row in await self.list_tenants()}
            now = time.time()
            for tenant_id in list(waiting):
                row = rows[tenant_id]
                if row["operation"]:
                    continue
                if row["status"] == "available":
                    seen[tenant_id] = now
                    waiting.discard(tenant_id)
                elif row["status"] == "failed":
                    raise BenchError(
                        f"tenant {row['name']} failed: {row['status_reason']}"
                    )
            if waiting and time.monotonic() > deadline:
                raise BenchError(
                    f"timed out: {len(waiting)} tenants not available after "
                    f"{timeout:.0f} s"
                )
            if waiting:
                await asyncio.sleep(POLL_SECONDS)
        return seen

    async def purge_tenants(self, tenant_ids: Iterable[str]) -> None:
        """Delete tenants with their data and wait until they are gone."""
        pending = set(tenant_ids)
        for tenant_id in pending:
            await self.call("DELETE", f"/api/v1/tenants/{tenant_id}?purge=true")

        deadline = time.monotonic() + TENANT_TIMEOUT
        while pending:
            listed = await self.call(
                "GET", "/api/v1/tenants?limit=1000&include_deleted=true"
            )
            pending &= {row["id"] for row in listed["items"]}
            if pending and time.monotonic() > deadline:
                raise BenchError(f"timed out waiting for {len(pending)} tenants' purge")
            if pending:
                await asyncio.sleep(POLL_SECONDS * 4)

    def tenant_port(self, tenant_id: str) -> int | None:
        """Return the tenant's host port from the state database, once chosen."""
        uri = f"file:{self.data_dir / 'state.db'}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
            row = db.execute(
                "SELECT port FROM tenants WHERE id = ?", [tenant_id]
            ).fetchone()
        return row[0] if row else None


def processes_naming(folder: Path) -> list[int]:
    """Return the ids of processes whose command line contains ``folder``."""
    needle = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command_line = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in command_line:
            found.append(int(entry.name))
    return found


async def http_ok(session: aiohttp.ClientSession, url: str) -> bool:
    """Return whether ``GET url`` returns 200."""
    try:
        async with session.get(url) as response:
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


# -- cleanup ---------------------------------------------------------------


def remove_labelled(client: docker.DockerClient, label: str) -> list[str]:
    """Remove every container, network and volume with ``label`` (KEY=VALUE).

    Returns:
        What could not be removed, as ``"<object>: <error>"`` lines.
    """
    failures: list[str] = []
    filters = {"label": label}
    for container in client.containers.list(all=True, filters=filters):
        failures += _try_remove(
            f"container {container.name}", container.remove, force=True
        )
    for network in client.networks.list(filters=filters):
        failures += _try_remove(f"network {network.name}", network.remove)
    for volume in client.volumes.list(filters=filters):
        failures += _try_remove(f"volume {volume.name}", volume.remove, force=True)
    return failures


def _try_remove(description: str, remove, **kwargs) -> list[str]:
    try:
        remove(**kwargs)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as error:
        return [f"{description}: {error}"]
    return []


@dataclass
class BenchRun:
    """One benchmark run: its id, its temporary folder and its daemon."""

    run_id: str
    work_dir: Path
    client: docker.DockerClient
    daemons: list[BenchDaemon] = field(default_factory=list)

    def new_daemon(self, settings: dict[str, str] | None = None) -> BenchDaemon:
        data_dir = self.work_dir / f"data-{len(self.daemons)}"
        data_dir.mkdir(mode=0o700)
        daemon = BenchDaemon(data_dir, settings)
        self.daemons.append(daemon)
        return daemon

    @property
    def label(self) -> str:
        return f"{RUN_LABEL}={self.run_id}"


@asynccontextmanager
async def bench_run(keep_dir: bool = False) -> AsyncIterator[BenchRun]:
    """Yield a run whose daemons and Docker objects are removed on exit.

    The data folders (daemon logs, state database) are removed too, unless
    ``keep_dir`` is set or the run failed, so a failure can be read later.

    Raises:
        BenchError: Something this run created could not be removed.
    """
    client = docker.from_env()
    client.ping()
    work_dir = Path(tempfile.mkdtemp(prefix="zenpro-bench-"))
    run = BenchRun(secrets.token_hex(4), work_dir, client)
    try:
        yield run
    except BaseException:
        keep_dir = True
        raise
    finally:
        failures: list[str] = []
        for daemon in run.daemons:
            await daemon.close()
            label = f"{LABEL_DAEMON}={daemon.daemon_id}"
            failures += await asyncio.to_thread(remove_labelled, client, label)
        failures += await asyncio.to_thread(remove_labelled, client, run.label)
        client.close()
        if keep_dir:
            print(f"Kept the data folders in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
        if failures:
            raise BenchError("cleanup failed:\n" + "\n".join(failures))


# -- machine facts and reporting -------------------------------------------


def machine_facts(client: docker.DockerClient, image: str) -> dict[str, Any]:
    """Return the facts a benchmark record names: machine, versions, load."""
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.partition(":")[2].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    commit = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "docker_version": client.version().get("Version", "unknown"),
        "image": image,
        "image_id": client.images.get(image).short_id,
        "commit": commit or "unknown",
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def print_load() -> None:
    print(f"Load average at the end: {os.getloadavg()[0]:.2f}")


def print_facts(facts: dict[str, Any]) -> None:
    print(
        f"{facts['date']}; {facts['nproc']} CPUs ({facts['cpu_model']}), "
        f"{facts['memory_gib']} GiB; Docker {facts['docker_version']}; "
        f"{facts['image']} ({facts['image_id']}); commit {facts['commit']}; "
        f"load average {facts['load_average_1m']}"
    )


def seconds_list(values: Iterable[float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


def parse_time(text: str) -> float:
    """Return epoch seconds of an ISO 8601 time from an event or Docker."""
    return datetime.fromisoformat(text).timestamp()


def write_json(path: str | None, result: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(result, indent=2) + "\n")
        print(f"Wrote {path}")


# -- overhead: one tenant against a bare docker run -------------------------

# Steps of a daemon sample, as (label, start mark, end mark). The marks are
# epoch times: "request" and "seen" from this client, "healthy" from its own
# /health poll of the tenant's port, the others from the tenant's events.
PHASES = (
    ("admin API request to 'created' event", "request", "created"),
    ("task start, 'starting' route, port choice", "created", "create_step"),
    ("image check, volume, network, container", "create_step", "start_step"),
    ("container start", "start_step", "wait_step"),
    ("server boot until /health returns 200", "wait_step", "healthy"),
    ("daemon's next /health poll, GET /info", "healthy", "health_seen"),
    ("PUT /activate, route and its probe", "health_seen", "available"),
    ("client sees 'available'", "available", "seen"),
)

# Event messages that mark each step; matched by prefix.
_STEP_MESSAGES = {
    "create_step": "creating the ",
    "start_step": "starting the server",
    "wait_step": "waiting for the server",
    "activate_step": "activating the ZenML server",
}


def event_marks(events: list[dict]) -> dict[str, float]:
    """Return the epoch time of each provisioning step in ``events``."""
    marks: dict[str, float] = {}
    for event in events:
        when = parse_time(event["created"])
        if event["action"] in ("created", "available"):
            marks.setdefault(event["action"], when)
        for mark, prefix in _STEP_MESSAGES.items():
            if event["action"] == "step" and event["message"].startswith(prefix):
                marks.setdefault(mark, when)
    return marks


async def provision_tenants(
    daemon: BenchDaemon, organization_id: str, names: list[str]
) -> list[dict[str, float]]:
    """Create tenants at once and return each one's step marks.

    Each tenant's marks hold its ``id``, the epoch times named in
    ``PHASES`` that were found, and ``total``: seconds from its create
    request until this client saw it available.
    """
    requests = {name: time.time() for name in names}
    created = await asyncio.gather(
        *(daemon.create_tenant(organization_id, name) for name in names)
    )
    observers = [
        asyncio.create_task(first_health(daemon, tenant_id)) for tenant_id in created
    ]
    try:
        seen = await daemon.wait_available(created)
    finally:
        for observer in observers:
            observer.cancel()
    healthy = await asyncio.gather(*observers, return_exceptions=True)

    samples = []
    for name, tenant_id, first_health_at in zip(names, created, healthy):
        marks: dict[str, Any] = event_marks(await daemon.events(tenant_id))
        marks["id"] = tenant_id
        marks["request"] = requests[name]
        marks["seen"] = seen[tenant_id]
        if isinstance(first_health_at, float):
            marks["healthy"] = first_health_at
        # A server that is already active skips activation.
        marks["health_seen"] = marks.get("activate_step", marks.get("available"))
        marks["total"] = marks["seen"] - marks["request"]
        samples.append(marks)
    return samples


async def first_health(daemon: BenchDaemon, tenant_id: str) -> float:
    """Return the epoch time at which the tenant's /health first returns 200."""
    port = None
    while port is None:
        port = await asyncio.to_thread(daemon.tenant_port, tenant_id)
        if port is None:
            await asyncio.sleep(POLL_SECONDS)
    url = f"http://127.0.0.1:{port}/health"
    while not await http_ok(daemon.session, url):
        await asyncio.sleep(POLL_SECONDS)
    return time.time()


def daemon_limits() -> list[str]:
    """Return ``docker run`` flags for the limits the daemon's containers get."""
    defaults = {setting.name: setting.default for setting in config.SETTINGS}
    memory = f"{defaults['tenants.memory_limit']}m"
    return [
        f"--cpus={defaults['tenants.cpu_limit']}",
        f"--memory={memory}",
        f"--memory-swap={memory}",
        f"--pids-limit={defaults['tenants.pids_limit']}",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges:true",
    ]


async def bare_sample(
    session: aiohttp.ClientSession,
    run: BenchRun,
    image: str,
    index: int,
    extra_flags: list[str],
) -> dict[str, float]:
    """Time ``docker run`` of ``image`` on a fresh volume until /health is 200."""
    port = free_port()
    name = f"zenpro-bench-{run.run_id}-bare-{index}"
    environment = {
        "ZENML_STORE_URL": f"sqlite:///{DATABASE_PATH}",
        "ZENML_CONFIG_PATH": f"{DATA_PATH}/.zenconfig",
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_SERVER_JWT_SECRET_KEY": secrets.token_hex(32),
    }
    command = ["docker", "run", "--detach", "--name", name, "--label", run.label]
    command += [
        "--mount",
        f"type=volume,source={name},target={DATA_PATH},volume-label={run.label}",
        "--publish",
        f"127.0.0.1:{port}:{SERVER_PORT}",
    ]
    for key, value in environment.items():
        command += ["--env", f"{key}={value}"]
    command += [*extra_flags, image, *SERVER_COMMAND]

    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise BenchError(f"docker run failed: {stderr.decode().strip()}")
    ran = time.monotonic()

    deadline = started + TENANT_TIMEOUT
    while not await http_ok(session, f"http://127.0.0.1:{port}/health"):
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for /health of container {name}")
        await asyncio.sleep(POLL_SECONDS)
    healthy = time.monotonic()

    # Not part of the baseline: the cost of the daemon's activation calls on
    # a fresh server, which the daemon's own events cannot split.
    base_url = f"http://127.0.0.1:{port}"
    await zenml_api.server_info(session, base_url)
    informed = time.monotonic()
    await zenml_api.activate(session, base_url, "bench", secrets.token_urlsafe(16))
    activated = time.monotonic()

    failures = await asyncio.to_thread(remove_labelled, run.client, run.label)
    if failures:
        raise BenchError("removing a bare container failed:\n" + "\n".join(failures))
    return {
        "docker_run": ran - started,
        "boot": healthy - ran,
        "total": healthy - started,
        "info": informed - healthy,
        "activate": activated - informed,
    }


def phase_medians(samples: list[dict[str, float]]) -> list[tuple[str, float | None]]:
    """Return each phase's median duration over the samples that have it."""
    medians = []
    for label, start, end in PHASES:
        durations = [
            sample[end] - sample[start]
            for sample in samples
            if sample.get(start) is not None and sample.get(end) is not None
        ]
        medians.append((label, statistics.median(durations) if durations else None))
    return medians


async def run_overhead(args: argparse.Namespace) -> dict[str, Any]:
    image = default_image(args.zenml_version)
    async with bench_run(args.keep_dir) as run:
        facts = machine_facts(run.client, image)
        print_facts(facts)
        daemon = run.new_daemon({"ZENPRO_TENANTS_ZENML_VERSION": args.zenml_version})
        await daemon.start()
        organization_id = await daemon.create_organization("bench")

        daemon_samples: list[dict[str, float]] = []
        bare_samples: list[dict[str, float]] = []
        extra_flags = daemon_limits() if args.bare_limits else []
        for index in range(args.warmup):
            await bare_sample(daemon.session, run, image, -1 - index, extra_flags)
        for index in range(args.samples):
            # Alternate which goes first, so a drift in load hits both alike.
            order = ("daemon", "bare") if index % 2 == 0 else ("bare", "daemon")
            for kind in order:
                if kind == "daemon":
                    [sample] = await provision_tenants(
                        daemon, organization_id, [f"t{index}"]
                    )
                    await daemon.purge_tenants([sample["id"]])
                    daemon_samples.append(sample)
                else:
                    sample = await bare_sample(
                        daemon.session, run, image, index, extra_flags
                    )
                    bare_samples.append(sample)
                print(f"  sample {index + 1}, {kind}: {sample['total']:.2f} s")

        errors = daemon.log_lines("ERROR")
    return report_overhead(
        facts, daemon_samples, bare_samples, errors, args.bare_limits
    )


def report_overhead(
    facts: dict[str, Any],
    daemon_samples: list[dict[str, float]],
    bare_samples: list[dict[str, float]],
    errors: list[str],
    bare_limits: bool,
) -> dict[str, Any]:
    daemon_totals = [sample["total"] for sample in daemon_samples]
    bare_totals = [sample["total"] for sample in bare_samples]
    daemon_median = statistics.median(daemon_totals)
    bare_median = statistics.median(bare_totals)
    ratio = daemon_median / bare_median
    phases = phase_medians(daemon_samples)
    bare_run = statistics.median(sample["docker_run"] for sample in bare_samples)
    bare_boot = statistics.median(sample["boot"] for sample in bare_samples)
    bare_info = statistics.median(sample["info"] for sample in bare_samples)
    bare_activate = statistics.median(sample["activate"] for sample in bare_samples)

    print()
    limits = ", bare containers with the daemon's limits" if bare_limits else ""
    print(f"Provisioning overhead, N={len(daemon_totals)} each, alternating{limits}")
    print(
        f"  daemon, request -> available:  median {daemon_median:.2f} s "
        f"({seconds_list(daemon_totals)})"
    )
    print(
        f"  bare, docker run -> /health:   median {bare_median:.2f} s "
        f"({seconds_list(bare_totals)})"
    )
    print(f"  ratio {ratio:.2f} (goal <= 1.15)")
    print(
        f"  bare run, medians: docker run returns in {bare_run:.2f} s, boot "
        f"{bare_boot:.2f} s; after it, first GET /api/v1/info {bare_info:.3f} s, "
        f"PUT /api/v1/activate {bare_activate:.3f} s"
    )
    print("Where the daemon's time goes (medians of the steps):")
    for label, median in phases:
        figure = "n/a" if median is None else f"{median:.3f} s"
        print(f"  {label:<42} {figure}")
    print(f"Daemon log: {len(errors)} ERROR lines")
    for line in errors[:5]:
        print(f"  {line}")
    print_load()
    return {
        "benchmark": "overhead",
        "machine": facts,
        "daemon_seconds": daemon_totals,
        "bare_seconds": bare_totals,
        "bare_limits": bare_limits,
        "daemon_median": daemon_median,
        "bare_median": bare_median,
        "ratio": ratio,
        "bare_docker_run_median": bare_run,
        "bare_boot_median": bare_boot,
        "bare_info_median": bare_info,
        "bare_activate_median": bare_activate,
        "phases": dict(phases),
        "daemon_samples": daemon_samples,
        "bare_samples": bare_samples,
        "daemon_error_lines": len(errors),
    }


# -- concurrent: ten tenants at once against ten one after another ---------

# Events that show a tenant did not go straight to available.
_PROBLEM_ACTIONS = ("failed", "repair", "interrupted")


async def run_concurrent(args: argparse.Namespace) -> dict[str, Any]:
    image = default_image(args.zenml_version)
    async with bench_run(args.keep_dir) as run:
        facts = machine_facts(run.client, image)
        print_facts(facts)
        daemon = run.new_daemon({"ZENPRO_TENANTS_ZENML_VERSION": args.zenml_version})
        await daemon.start()
        organization_id = await daemon.create_organization("bench")

        # Serial first, then purged, so the batch starts on an idle machine.
        serial: list[dict[str, Any]] = []
        for index in range(args.tenants):
            [sample] = await provision_tenants(daemon, organization_id, [f"s{index}"])
            print(f"  serial tenant {index + 1}: {sample['total']:.2f} s")
            serial.append(sample)
        serial_problems = await problem_events(daemon, serial)
        await daemon.purge_tenants(sample["id"] for sample in serial)

        names = [f"c{index}" for index in range(args.tenants)]
        batch = await provision_tenants(daemon, organization_id, names)
        batch_problems = await problem_events(daemon, batch)
        errors = daemon.log_lines("ERROR")

    return report_concurrent(
        facts, serial, batch, serial_problems + batch_problems, errors
    )


async def problem_events(
    daemon: BenchDaemon, samples: list[dict[str, Any]]
) -> list[str]:
    """Return the failure, repair and interruption events of the tenants."""
    found = []
    for sample in samples:
        for event in await daemon.events(sample["id"]):
            if event["action"] in _PROBLEM_ACTIONS:
                found.append(f"{sample['id']}: {event['action']}: {event['message']}")
    return found


def wall_time(samples: list[dict[str, Any]]) -> float:
    """Return seconds from the first create request to the last 'available'."""
    return max(sample["seen"] for sample in samples) - min(
        sample["request"] for sample in samples
    )


def last_mark(samples: list[dict[str, Any]], mark: str) -> float | None:
    """Return seconds from the first request to the latest ``mark``."""
    times = [sample[mark] for sample in samples if sample.get(mark) is not None]
    if not times:
        return None
    return max(times) - min(sample["request"] for sample in samples)


def report_concurrent(
    facts: dict[str, Any],
    serial: list[dict[str, Any]],
    batch: list[dict[str, Any]],
    problems: list[str],
    errors: list[str],
) -> dict[str, Any]:
    serial_totals = [sample["total"] for sample in serial]
    batch_totals = [sample["total"] for sample in batch]
    serial_wall = wall_time(serial)
    batch_wall = wall_time(batch)
    count = len(batch)

    print()
    print(f"{count} tenants: one after another, then all at once")
    print(
        f"  one after another (measured): wall {serial_wall:.1f} s, per tenant "
        f"median {statistics.median(serial_totals):.2f} s"
    )
    print(
        f"  all at once: wall {batch_wall:.1f} s, per tenant median "
        f"{statistics.median(batch_totals):.2f} s, max {max(batch_totals):.2f} s"
    )
    last_health = last_mark(batch, "healthy")
    if last_health is not None:
        print(
            f"  all at once: the last server's /health returned 200 after "
            f"{last_health:.1f} s, the last tenant was available after "
            f"{batch_wall:.1f} s"
        )
    print(f"  at once / one after another, wall time: {batch_wall / serial_wall:.2f}")
    print("Steps of the tenants created at once (medians):")
    for label, median in phase_medians(batch):
        figure = "n/a" if median is None else f"{median:.3f} s"
        print(f"  {label:<42} {figure}")
    print(f"Failure, repair or interruption events: {len(problems)}")
    for line in problems[:10]:
        print(f"  {line}")
    print(f"Daemon log: {len(errors)} ERROR lines")
    for line in errors[:5]:
        print(f"  {line}")
    print_load()
    return {
        "benchmark": "concurrent",
        "machine": facts,
        "tenants": count,
        "serial_seconds": serial_totals,
        "serial_wall": serial_wall,
        "batch_seconds": batch_totals,
        "batch_wall": batch_wall,
        "batch_phases": dict(phase_medians(batch)),
        "batch_last_health": last_health,
        "serial_samples": serial,
        "batch_samples": batch,
        "problem_events": problems,
        "daemon_error_lines": len(errors),
    }


# -- command line ----------------------------------------------------------


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Add the flags every benchmark of the tenant runtime takes."""
    parser.add_argument(
        "--zenml-version",
        default=ZENML_VERSION,
        help="ZenML server version of the tenants and of the bare containers.",
    )
    parser.add_argument("--json", help="Also write the figures to this JSON file.")
    parser.add_argument(
        "--keep-dir",
        action="store_true",
        help="Keep the temporary data folders (daemon logs, state database); "
        "a failed run always keeps them.",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    overhead = commands.add_parser(
        "overhead", help="One tenant through the daemon against a bare docker run."
    )
    overhead.add_argument(
        "--samples", type=int, default=5, help="Samples of each kind (default 5)."
    )
    overhead.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="Bare runs before measuring, to warm the page cache (default 1).",
    )
    overhead.add_argument(
        "--bare-limits",
        action="store_true",
        help="Give bare containers the CPU, memory, PID and capability limits "
        "of the daemon's containers, to tell their cost from the daemon's.",
    )
    add_common_flags(overhead)

    concurrent = commands.add_parser(
        "concurrent", help="Tenants created at once against one after another."
    )
    concurrent.add_argument(
        "--tenants", type=int, default=10, help="Number of tenants (default 10)."
    )
    add_common_flags(concurrent)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    benchmark = run_overhead if args.command == "overhead" else run_concurrent
    started = time.monotonic()
    try:
        result = asyncio.run(benchmark(args))
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Benchmark took {time.monotonic() - started:.0f} s")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
