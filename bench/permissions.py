"""Benchmark of the management plane's permission checks.

Seeds a fresh data folder with one organization, one tenant record (status
deactivated, so no tenant server starts) and 50 users, each holding the
tenant's Viewer role and sharing 5 of the 20 stacks it asks about. Runs the
daemon on that folder as a child process (``python -m zenpro_local serve``,
process runtime) and logs in as the tenant with its client credentials.

Then 1, and then 50, concurrent clients send ``POST
/mp/rbac/check_permissions`` for a batch of 20 stack resources
(``action=update``, so each decision reads the grants and the shares) for
``--seconds`` seconds each, straight to the daemon's listen address (not
through Caddy). Latency is measured per request in the client, an aiohttp
session in this process, so it includes the client's own event loop time on
the same cores. When wrk is installed, 50 wrk connections load the daemon
for as long again. Last, the decision itself (``rbac.check``, the handler's
work without HTTP) is timed 5,000 times in this process on the same state.
Prints p50, p99 and requests per second, and with ``--output`` writes them
as JSON. Removes the folder and stops the daemon at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from zenpro_local import authz, bootstrap
from zenpro_local.management_plane import tokens
from zenpro_local.store import Store, new_id, utcnow

from admin_api import WRK_SCRIPT

CONCURRENCY = 50
BATCH = 20
USERS = 50
CLIENT_SECRET = "bench-client-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def seed(data_dir: Path) -> tuple[str, list[str], list[str]]:
    """Write the state; return the tenant id, user ids and resource strings."""
    store = Store.open(data_dir / "state.db")
    authz.sync_predefined_roles(store)
    bootstrap.ensure_admin(store, data_dir)

    now = utcnow()
    organization_id, tenant_id = new_id(), new_id()
    stacks = [str(uuid.uuid4()) for _ in range(BATCH)]
    resources = [f"stack/{stack}" for stack in stacks]
    users = [new_id() for _ in range(USERS)]

    with store.transaction() as db:
        db["organizations"].insert(
            {"id": organization_id, "name": "bench", "created": now, "updated": now}
        )
        db["tenants"].insert(
            {
                "id": tenant_id,
                "organization_id": organization_id,
                "name": "bench",
                "status": "deactivated",
                "desired_state": "deactivated",
                "zenml_version": "0.98.0",
                "client_secret_hash": tokens.hash_token(CLIENT_SECRET),
                "created": now,
                "updated": now,
            }
        )
        for number, user_id in enumerate(users):
            db["users"].insert(
                {"id": user_id, "username": f"user{number}", "created": now,
                 "updated": now}
            )
            for role_id, tenant in (("organization-member", None),
                                    ("tenant-viewer", tenant_id)):
                db["role_assignments"].insert(
                    {"id": new_id(), "role_id": role_id, "user_id": user_id,
                     "organization_id": organization_id, "tenant_id": tenant,
                     "created": now}
                )
            for resource in resources[number % 4 :: 4][:5]:
                db["resource_shares"].insert(
                    {"tenant_id": tenant_id, "resource": resource,
                     "resource_type": "stack", "user_id": user_id,
                     "actions": '["read", "update"]', "created": now}
                )
    store.close()
    return tenant_id, users, resources


def start_daemon(data_dir: Path, port: int) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ZENPRO_")}
    environment.update(
        {
            "ZENPRO_DATA_DIR": str(data_dir),
            "ZENPRO_LISTEN": f"127.0.0.1:{port}",
            "ZENPRO_RUNTIME": "process",
            "ZENPRO_HTTPS_PORT": str(free_port()),
            "ZENPRO_CADDY_BIND": "127.0.0.1",
            "ZENPRO_LOG_LEVEL": "warning",
        }
    )
    log = open(data_dir / "daemon.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "zenpro_local", "serve"],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def wait_healthy(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with session.get(url + "/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("the daemon did not respond to /health within 60 s")


def measure_decision(data_dir: Path, tenant_id: str, users: list[str],
                     resources: list[str], rounds: int = 5000) -> dict:
    """Time :func:`rbac.check` itself in this process, as the handler runs it."""
    from zenpro_local.management_plane import rbac

    store = Store.open(data_dir / "state.db")
    try:
        tenant = store.query_one("SELECT * FROM tenants WHERE id = ?", [tenant_id])
        timings = []
        for number in range(rounds):
            started = time.perf_counter()
            rbac.check(store, tenant, users[number % len(users)], "update", resources)
            timings.append(time.perf_counter() - started)
    finally:
        store.close()
    timings.sort()
    return {
        "decision_p50_ms": round(statistics.median(timings) * 1000, 3),
        "decision_p99_ms": round(timings[int(len(timings) * 0.99) - 1] * 1000, 3),
    }


WRK_REQUESTS = """
local users = {%(users)s}
local counter = 0
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"

request = function()
  counter = counter + 1
  local user = users[counter %% #users + 1]
  return wrk.format(nil, "/mp/rbac/check_permissions?action=update&user_id=" .. user)
end
"""


async def tenant_token(url: str, tenant_id: str) -> str:
    """Log in as the tenant with its client credentials; return the token."""
    async with aiohttp.ClientSession() as session:
        await wait_healthy(session, url)
        async with session.post(
            url + "/mp/auth/login",
            data={"grant_type": "client_credentials", "client_id": tenant_id,
                  "client_secret": CLIENT_SECRET, "audience": "zenpro-local"},
        ) as response:
            assert response.status == 200, await response.text()
            return (await response.json())["access_token"]


def cpu_seconds(pid: int) -> float:
    """Return the CPU time process ``pid`` has used so far, user plus system."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime, fields 14 and 15 of proc(5), in clock ticks. The
    # split starts after the command name, at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """Return the CPU time of this process's finished and reaped children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_wrk(port: int, daemon_pid: int, token: str, users: list[str],
                resources: list[str], seconds: float, work_dir: Path) -> dict:
    """Load the daemon from wrk, a C client, with CONCURRENCY connections.

    Each request names the next user in turn, so the daemon decides for
    all 50 users. wrk runs in one thread, so the daemon keeps most of
    the second core.
    """
    script = work_dir / "check_permissions.lua"
    script.write_text(
        WRK_REQUESTS % {
            "users": ", ".join(f'"{user}"' for user in users),
            "body": json.dumps(resources),
            "token": token,
        }
        + WRK_SCRIPT
    )
    # A short warm-up fills the daemon's caches.
    run_wrk(port, 2, script)
    daemon_started = cpu_seconds(daemon_pid)
    client_started = children_cpu_seconds()
    results = run_wrk(port, seconds, script)
    daemon_seconds = cpu_seconds(daemon_pid) - daemon_started
    client_seconds = children_cpu_seconds() - client_started
    results["daemon_cores"] = round(daemon_seconds / seconds, 2)
    results["client_cores"] = round(client_seconds / seconds, 2)
    return results


def run_wrk(port: int, seconds: float, script: Path) -> dict:
    command = [
        "wrk", "--threads", "1", "--connections", str(CONCURRENCY),
        "--duration", f"{seconds:g}s", "--timeout", "10s",
        "--script", str(script), f"http://127.0.0.1:{port}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(
        line for line in result.stdout.splitlines() if line.startswith("WRK_RESULT ")
    )
    figures = json.loads(line.removeprefix("WRK_RESULT "))
    if figures["non_2xx"] or figures["socket_errors"] or figures["timeouts"]:
        raise RuntimeError(f"wrk saw failed requests: {figures}")
    return {
        "client": "wrk",
        "requests": figures["requests"],
        "requests_per_second": round(
            figures["requests"] / figures["duration_us"] * 1e6
        ),
        "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "concurrency": CONCURRENCY,
    }


async def measure(url: str, daemon_pid: int, tenant_id: str, users: list[str],
                  resources: list[str], seconds: float, concurrency: int) -> dict:
    token = await tenant_token(url, tenant_id)
    daemon_started = cpu_seconds(daemon_pid)
    client_started = time.process_time()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = {"Authorization": f"Bearer {token}"}
        latencies: list[float] = []
        deadline = time.monotonic() + seconds

        async def client(number: int) -> None:
            user_id = users[number % len(users)]
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with session.post(
                    url + "/mp/rbac/check_permissions",
                    params={"user_id": user_id, "action": "update"},
                    json=resources,
                    headers=headers,
                ) as response:
                    body = await response.json()
                latencies.append(time.perf_counter() - started)
                assert response.status == 200, body
                assert len(body) == BATCH, body
                assert sum(body.values()) == 5, body

        await asyncio.gather(*(client(n) for n in range(concurrency)))
    daemon_cores = (cpu_seconds(daemon_pid) - daemon_started) / seconds
    client_cores = (time.process_time() - client_started) / seconds
    latencies.sort()
    return {
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "concurrency": concurrency,
        "daemon_cores": round(daemon_cores, 2),
        "client_cores": round(client_cores, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="Duration of the measurement, in seconds.")
    parser.add_argument("--output", type=Path, help="Write the results as JSON here.")
    arguments = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="zenpro-bench-permissions-"))
    process = None
    try:
        tenant_id, users, resources = seed(data_dir)
        port = free_port()
        process = start_daemon(data_dir, port)
        url = f"http://127.0.0.1:{port}"
        results = {
            "batch": BATCH,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "http": [
                asyncio.run(measure(url, process.pid, tenant_id, users, resources,
                                    arguments.seconds, concurrency))
                for concurrency in (1, CONCURRENCY)
            ],
        }
        if shutil.which("wrk"):
            token = asyncio.run(tenant_token(url, tenant_id))
            results["http"].append(
                measure_wrk(port, process.pid, token, users, resources,
                            arguments.seconds, data_dir)
            )
        else:
            print("wrk is not installed (apt-get install wrk): skipped its run",
                  file=sys.stderr)
        results.update(measure_decision(data_dir, tenant_id, users, resources))
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if arguments.output:
        arguments.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
