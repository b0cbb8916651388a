"""Benchmarks of the daemon's admin API with a large state.

Each subcommand seeds a fresh data folder with 1,000 tenants in 20
organizations, 2,000 users and 5,000 role assignments (see
``admin_state.py``). It runs the daemon on that folder as a child process,
``python -m zenpro_local serve`` with ``ZENPRO_RUNTIME=process``, and no
tenant server starts because every tenant is deactivated. At the end it
removes the folder and stops every process it started.

- ``read``: ``GET /api/v1/tenants`` as an organization Admin (50 tenants
  per page) and as a Member with 3 tenant roles. wrk sends it over 50
  keep-alive connections for 20 s per caller and reports p50, p99 and
  requests per second. A bare aiohttp handler returning the same bodies
  (``admin_bare_server.py``) is measured the same way in the same run.
  Also the daemon's resident memory under that load.
- ``memory``: the daemon's resident memory idle, then under the ``read``
  load (the peak of samples taken every 0.2 s, and ``VmHWM``).
- ``startup``: time from starting the process to the first 200 from
  ``/health``, five times on the same data.
- ``writes``: 50 concurrent clients create users, memberships and tenant
  role assignments for 20 s; then every acknowledged write is looked up in
  the state database, and the daemon's log is searched for "database is
  locked" and tracebacks.
- ``all``: the four above, one after another.

wrk (Debian's ``wrk`` package) is the load generator of ``read`` and
``memory``; ``writes`` uses an aiohttp client in this process. Neither
shares the daemon's process. Results are printed and, with ``--output``,
written as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import aiohttp

from admin_state import SeedInfo, seed

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "WRK_RESULT {\\"requests\\": %d, \\"duration_us\\": %d, \\"bytes\\": %d, "
    .. "\\"non_2xx\\": %d, \\"socket_errors\\": %d, \\"timeouts\\": %d, "
    .. "\\"p50_us\\": %d, \\"p90_us\\": %d, \\"p99_us\\": %d, \\"max_us\\": %d}\\n",
    summary.requests, summary.duration, summary.bytes, errors.status,
    errors.connect + errors.read + errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
"""
START_TIMEOUT = 30.0
STARTUP_RUNS = 5
RSS_SAMPLE_SECONDS = 0.2


class BenchError(Exception):
    """A benchmark step failed; the message names the step."""


# -- machine and processes --------------------------------------------------


def machine_facts() -> dict[str, Any]:
    """Return what the figures depend on: cores, CPU model, memory, load."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        result = subprocess.run([wrk, "--version"], capture_output=True, text=True)
        wrk_version = (result.stdout + result.stderr).splitlines()[0]
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "wrk": wrk_version,
    }


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    """Send one GET to 127.0.0.1:``port``; return the status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_healthy(port: int, process: subprocess.Popen, path: str = "/health") -> None:
    """Poll ``path`` every 5 ms until it returns 200.

    Raises:
        BenchError: the process exited or did not respond within
            START_TIMEOUT seconds.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"process exited with {process.returncode} at start")
        with contextlib.suppress(OSError):
            if http_get(port, path)[0] == 200:
                return
        time.sleep(0.005)
    raise BenchError(f"no 200 from {path} within {START_TIMEOUT:.0f} s")


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Return a memory figure of ``/proc/<pid>/status`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {field}")


def cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of proc(5), counted from the pid.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_process(process: subprocess.Popen) -> None:
    """Stop a child with SIGTERM, and SIGKILL after 15 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Daemon:
    """A daemon child process on a seeded data folder."""

    process: subprocess.Popen
    port: int
    log_path: Path
    start_seconds: float
    # CPU time the process had used when /health first returned 200, which
    # other work on the machine inflates far less than wall time.
    start_cpu_seconds: float

    @property
    def pid(self) -> int:
        return self.process.pid


def daemon_environment(data_dir: Path, port: int, log_level: str) -> dict[str, str]:
    """Return the child's environment: ours without ZENPRO_*, plus its settings."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("ZENPRO_")
    }
    environ.update(
        {
            "ZENPRO_DATA_DIR": str(data_dir),
            "ZENPRO_LISTEN": f"127.0.0.1:{port}",
            "ZENPRO_RUNTIME": "process",
            "ZENPRO_HTTPS_PORT": str(free_port()),
            "ZENPRO_PROCESS_VENVS_DIR": str(data_dir.parent / "venvs"),
            "ZENPRO_LOG_LEVEL": log_level,
        }
    )
    return environ


@contextlib.contextmanager
def running_daemon(data_dir: Path, log_level: str = "info") -> Iterator[Daemon]:
    """Start the daemon on ``data_dir``, wait for /health, stop it on exit."""
    port = free_port()
    log_path = data_dir.parent / "daemon.log"
    with open(log_path, "ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "zenpro_local", "serve"],
            env=daemon_environment(data_dir, port, log_level),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(port, process)
        elapsed = time.perf_counter() - started
        yield Daemon(process, port, log_path, elapsed, cpu_seconds(process.pid))
    finally:
        stop_process(process)


@contextlib.contextmanager
def seeded_folder(keep: bool) -> Iterator[tuple[Path, SeedInfo]]:
    """Seed a temporary folder; remove it on exit unless ``keep``."""
    base = Path(tempfile.mkdtemp(prefix="zenpro-bench-admin-"))
    try:
        started = time.perf_counter()
        info = seed(base / "data")
        print(
            f"seeded {info.counts} in {time.perf_counter() - started:.1f} s at {base}",
            flush=True,
        )
        yield base, info
    finally:
        if keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


class RssSampler:
    """Samples a process's resident memory in a thread while in a ``with``."""

    def __init__(self, pid: int):
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            with contextlib.suppress(FileNotFoundError):
                self.samples.append(rss_kib(self.pid))

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


# -- wrk ---------------------------------------------------------------------


def run_wrk(
    port: int, token: str, duration: float, connections: int, script: Path
) -> dict[str, Any]:
    """Run wrk against ``GET /api/v1/tenants``; return its figures.

    Raises:
        BenchError: wrk is missing or failed, or saw errors or non-2xx
            responses.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed: apt-get install wrk")
    command = [
        wrk,
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{duration:g}s",
        "--timeout",
        "10s",
        "--script",
        str(script),
        "--header",
        f"Authorization: Bearer {token}",
        f"http://127.0.0.1:{port}/api/v1/tenants",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"wrk failed with {result.returncode}: {result.stderr}")
    for line in result.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            figures = json.loads(line.removeprefix("WRK_RESULT "))
            break
    else:
        raise BenchError(f"wrk printed no result line: {result.stdout}")
    if figures["non_2xx"] or figures["socket_errors"] or figures["timeouts"]:
        raise BenchError(f"wrk saw failed requests: {figures}")
    seconds = figures["duration_us"] / 1e6
    return {
        "requests": figures["requests"],
        "requests_per_second": round(figures["requests"] / seconds),
        "p50_ms": figures["p50_us"] / 1000,
        "p90_ms": figures["p90_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "max_ms": figures["max_us"] / 1000,
        "response_bytes": figures["bytes"] // max(figures["requests"], 1),
    }


# -- read ----------------------------------------------------------------------


def _callers(info: SeedInfo) -> dict[str, str]:
    return {
        "organization_admin": info.organization_admin_token,
        "member_with_3_tenants": info.member_token,
    }


def _check_bodies(daemon: Daemon, info: SeedInfo) -> dict[str, str]:
    """Fetch each caller's page once, check what it shows, return the bodies."""
    bodies = {}
    for caller, token in _callers(info).items():
        status, body = http_get(daemon.port, "/api/v1/tenants", token)
        if status != 200:
            raise BenchError(f"{caller}: GET /api/v1/tenants returned {status}")
        page = json.loads(body)
        ids = {item["id"] for item in page["items"]}
        if caller == "organization_admin":
            expected_total = 50
            wrong = {i["organization_id"] for i in page["items"]} != {
                info.organization_id
            }
        else:
            expected_total = 3
            wrong = ids != set(info.member_tenant_ids)
        if page["total"] != expected_total or wrong:
            raise BenchError(f"{caller} sees the wrong tenants: total {page['total']}")
        bodies[f"Bearer {token}"] = body.decode()
    return bodies


@contextlib.contextmanager
def bare_server(base: Path, bodies: dict[str, str]) -> Iterator[int]:
    """Run the bare aiohttp baseline with ``bodies``; yield its port."""
    bodies_path = base / "bodies.json"
    bodies_path.write_text(json.dumps(bodies))
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(BENCH_DIR / "admin_bare_server.py"),
            str(port),
            str(bodies_path),
        ]
    )
    try:
        token = next(iter(bodies)).removeprefix("Bearer ")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(OSError):
                if http_get(port, "/api/v1/tenants", token)[0] == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError("the bare aiohttp server did not start")
            time.sleep(0.01)
        yield port
    finally:
        stop_process(process)


def bench_read(args: argparse.Namespace) -> dict[str, Any]:
    """Measure list latency and throughput against the bare baseline."""
    results: dict[str, Any] = {
        "duration_s": args.duration,
        "connections": args.connections,
    }
    with seeded_folder(args.keep) as (base, info):
        script = base / "result.lua"
        script.write_text(WRK_SCRIPT)
        with running_daemon(base / "data", "warning") as daemon:
            bodies = _check_bodies(daemon, info)
            results["idle_rss_mib"] = round(rss_kib(daemon.pid) / 1024, 1)
            with bare_server(base, bodies) as bare_port, RssSampler(daemon.pid) as rss:
                for caller, token in _callers(info).items():
                    print(f"read: {caller}", flush=True)
                    results[caller] = _compare(
                        daemon.port, bare_port, token, args, script
                    )
            results["peak_rss_under_load_mib"] = round(max(rss.samples) / 1024, 1)
            results["vm_hwm_mib"] = round(rss_kib(daemon.pid, "VmHWM") / 1024, 1)
    return results


def _compare(
    daemon_port: int, bare_port: int, token: str, args: argparse.Namespace, script: Path
) -> dict[str, Any]:
    # A short warm-up fills the daemon's caches and both servers' sockets.
    for port in (daemon_port, bare_port):
        run_wrk(port, token, 2, args.connections, script)
    bare = run_wrk(bare_port, token, args.duration, args.connections, script)
    daemon = run_wrk(daemon_port, token, args.duration, args.connections, script)
    ratio = daemon["requests_per_second"] / bare["requests_per_second"]
    return {"daemon": daemon, "bare_aiohttp": bare, "throughput_ratio": round(ratio, 2)}


# -- memory ----------------------------------------------------------------------


def bench_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Measure resident memory idle and under the read load."""
    results: dict[str, Any] = {}
    with seeded_folder(args.keep) as (base, info):
        script = base / "result.lua"
        script.write_text(WRK_SCRIPT)
        with running_daemon(base / "data", "warning") as daemon:
            _check_bodies(daemon, info)
            idle = []
            for _ in range(10):
                idle.append(rss_kib(daemon.pid))
                time.sleep(RSS_SAMPLE_SECONDS)
            results["idle_rss_mib"] = round(max(idle) / 1024, 1)
            with RssSampler(daemon.pid) as rss:
                for caller, token in _callers(info).items():
                    print(f"memory: {caller} load", flush=True)
                    run_wrk(daemon.port, token, args.duration, args.connections, script)
            results["peak_rss_under_load_mib"] = round(max(rss.samples) / 1024, 1)
            results["vm_hwm_mib"] = round(rss_kib(daemon.pid, "VmHWM") / 1024, 1)
    return results


# -- startup ---------------------------------------------------------------------


def bench_startup(args: argparse.Namespace) -> dict[str, Any]:
    """Measure process start to a healthy /health, several times.

    The first start on the seeded folder also pushes every tenant's route to
    a new Caddy, so it is reported apart from the later ones. Import time is
    measured on its own, as ``python -c "import zenpro_local.daemon"``.
    """
    seconds, cpu = [], []
    with seeded_folder(args.keep) as (base, _info):
        for run in range(STARTUP_RUNS):
            with running_daemon(base / "data", "warning") as daemon:
                seconds.append(daemon.start_seconds)
                cpu.append(daemon.start_cpu_seconds)
            print(
                f"startup run {run + 1}: {daemon.start_seconds:.3f} s, "
                f"{daemon.start_cpu_seconds:.2f} s CPU",
                flush=True,
            )
    imports = [_import_seconds() for _ in range(STARTUP_RUNS)]
    later = seconds[1:]
    return {
        "runs_s": [round(value, 3) for value in seconds],
        "runs_cpu_s": [round(value, 2) for value in cpu],
        "first_s": round(seconds[0], 3),
        "later_median_s": round(statistics.median(later), 3),
        "later_max_s": round(max(later), 3),
        "import_median_s": round(statistics.median(imports), 3),
    }


def _import_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import zenpro_local.daemon"], check=True)
    return time.perf_counter() - started


# -- writes ----------------------------------------------------------------------


@dataclass
class WriteLog:
    """Acknowledged writes and every other outcome of the write clients."""

    users: list[str]
    assignments: list[str]
    statuses: dict[str, int]
    locked_answers: int
    latencies: list[float]


def _organizations_and_tenants(data_dir: Path) -> list[tuple[str, list[str]]]:
    uri = f"file:{data_dir / 'state.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
        organizations = [
            row[0] for row in connection.execute("SELECT id FROM organizations")
        ]
        return [
            (
                organization_id,
                [
                    row[0]
                    for row in connection.execute(
                        "SELECT id FROM tenants WHERE organization_id = ?",
                        [organization_id],
                    )
                ],
            )
            for organization_id in organizations
        ]


async def _write_clients(
    port: int, token: str, places: list[tuple[str, list[str]]], args: argparse.Namespace
) -> WriteLog:
    log = WriteLog([], [], {}, 0, [])
    headers = {"Authorization": f"Bearer {token}"}
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + args.duration
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=30)

    async with aiohttp.ClientSession(
        url, headers=headers, connector=connector, timeout=timeout
    ) as session:

        async def post(path: str, body: dict) -> dict | None:
            started = time.perf_counter()
            async with session.post(path, json=body) as response:
                text = await response.text()
            log.latencies.append(time.perf_counter() - started)
            log.statuses[str(response.status)] = (
                log.statuses.get(str(response.status), 0) + 1
            )
            if "database is locked" in text:
                log.locked_answers += 1
            return json.loads(text) if response.status == 201 else None

        async def client(number: int) -> None:
            sequence = 0
            while time.monotonic() < deadline:
                organization_id, tenants = places[(number + sequence) % len(places)]
                username = f"writer-{number:02d}-{sequence:05d}"
                sequence += 1
                user = await post("/api/v1/users", {"username": username})
                if user is None:
                    continue
                log.users.append(user["id"])
                member = await post(
                    f"/api/v1/organizations/{organization_id}/members",
                    {"user_id": user["id"], "role_id": "organization-member"},
                )
                if member is None:
                    continue
                log.assignments.append(member["id"])
                granted = await post(
                    f"/api/v1/organizations/{organization_id}/role_assignments",
                    {
                        "role_id": "tenant-developer",
                        "user_id": user["id"],
                        "tenant_id": tenants[sequence % len(tenants)],
                    },
                )
                if granted is not None:
                    log.assignments.append(granted["id"])

        await asyncio.gather(*(client(number) for number in range(args.connections)))
    return log


def _missing(data_dir: Path, table: str, ids: list[str]) -> int:
    uri = f"file:{data_dir / 'state.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
        connection.execute("CREATE TEMP TABLE wanted (id TEXT PRIMARY KEY)")
        connection.executemany("INSERT INTO wanted VALUES (?)", [(i,) for i in ids])
        return connection.execute(
            f"SELECT count(*) FROM wanted WHERE id NOT IN (SELECT id FROM {table})"
        ).fetchone()[0]


def bench_writes(args: argparse.Namespace) -> dict[str, Any]:
    """Run concurrent writers, then check every acknowledged write is stored."""
    with seeded_folder(args.keep) as (base, info):
        data_dir = base / "data"
        places = _organizations_and_tenants(data_dir)
        with running_daemon(data_dir, "info") as daemon:
            cpu_before = cpu_seconds(daemon.pid)
            started = time.perf_counter()
            log = asyncio.run(
                _write_clients(daemon.port, info.admin_token, places, args)
            )
            elapsed = time.perf_counter() - started
            daemon_cpu = cpu_seconds(daemon.pid) - cpu_before
        daemon_log = daemon.log_path.read_text()
        latencies = sorted(log.latencies)
        acknowledged = len(log.users) + len(log.assignments)
        results = {
            "duration_s": round(elapsed, 1),
            "clients": args.connections,
            "acknowledged_writes": acknowledged,
            "acknowledged_users": len(log.users),
            "acknowledged_role_assignments": len(log.assignments),
            "writes_per_second": round(acknowledged / elapsed),
            "daemon_cpu_share": round(daemon_cpu / elapsed, 2),
            "daemon_cpu_ms_per_request": round(
                daemon_cpu * 1000 / sum(log.statuses.values()), 3
            ),
            "statuses": log.statuses,
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
            "missing_users": _missing(data_dir, "users", log.users),
            "missing_role_assignments": _missing(
                data_dir, "role_assignments", log.assignments
            ),
            "database_locked_answers": log.locked_answers,
            "database_locked_in_log": daemon_log.count("database is locked"),
            "tracebacks_in_log": daemon_log.count("Traceback"),
            "server_errors": sum(
                count for status, count in log.statuses.items() if int(status) >= 500
            ),
        }
    return results


# -- command line ----------------------------------------------------------------

COMMANDS = {
    "read": bench_read,
    "memory": bench_memory,
    "startup": bench_startup,
    "writes": bench_writes,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=[*COMMANDS, "all"])
    parser.add_argument(
        "--duration", type=float, default=20.0, help="Seconds of each load run."
    )
    parser.add_argument(
        "--connections", type=int, default=50, help="Concurrent clients."
    )
    parser.add_argument("--output", type=Path, help="Also write the results as JSON.")
    parser.add_argument(
        "--keep", action="store_true", help="Keep the seeded folders and logs."
    )
    args = parser.parse_args()

    report: dict[str, Any] = {"machine": machine_facts()}
    names = list(COMMANDS) if args.command == "all" else [args.command]
    try:
        for name in names:
            report[name] = COMMANDS[name](args)
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    report["machine"]["load_average_after"] = os.getloadavg()

    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
