"""Benchmark: restart the daemon while twenty tenants run.

Starts the daemon as a child process, creates the tenants, waits until all
are available and records each container's id, ``State.StartedAt`` and
``RestartCount``. Then, several times: stops the daemon with SIGTERM,
starts it again, and measures the seconds until ``/health`` returns 200.
The daemon runs its first reconcile pass before it opens its socket, so a
200 also means that pass is done. The first GET of the tenants list right
after it must show every tenant available. After a watch long enough for
two timer passes, no container may have been restarted or replaced.

The same start is measured on a daemon with no tenants, so the difference
is what the tenants cost. Run ``--help`` for the options.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import sys
import time
from datetime import datetime, timezone
from typing import Any, NamedTuple

import aiohttp
import docker

from tenant_provisioning import (
    BASE_DOMAIN,
    BenchDaemon,
    BenchError,
    POLL_SECONDS,
    add_common_flags,
    bench_run,
    machine_facts,
    print_facts,
    print_load,
    provision_tenants,
    seconds_list,
    wall_time,
    write_json,
)
from zenpro_local.images.builder import default_image
from zenpro_local.runtime.base import LABEL_DAEMON, LABEL_TENANT

# Steps of a daemon start, each ending at the first log line (after the
# start) that contains its marker. The last step ends when /health is 200.
START_STEPS = (
    ("interpreter, imports, settings", "Starting zenpro-local"),
    ("state database, runtime, Caddy launch", "Started Caddy"),
    ("Caddy ready, its routes loaded", "Proxy ready"),
    ("first reconcile pass", "Admin API listening"),
    ("socket open to /health returning 200", None),
)


class ContainerState(NamedTuple):
    """Fields of ``docker inspect`` that change on a restart or replacement."""

    container_id: str
    started_at: str
    restart_count: int
    status: str


def container_states(
    client: docker.DockerClient, daemon: BenchDaemon
) -> dict[str, ContainerState]:
    """Return the state of each tenant's container, by tenant id."""
    containers = client.containers.list(
        all=True, filters={"label": f"{LABEL_DAEMON}={daemon.daemon_id}"}
    )
    return {
        container.labels[LABEL_TENANT]: ContainerState(
            container.id,
            container.attrs["State"]["StartedAt"],
            container.attrs["RestartCount"],
            container.attrs["State"]["Status"],
        )
        for container in containers
    }


def changed_containers(
    before: dict[str, ContainerState], after: dict[str, ContainerState]
) -> list[str]:
    """Return one line per tenant whose container is not the same, running one."""
    changes = []
    for tenant_id, old in before.items():
        new = after.get(tenant_id)
        if new is None:
            changes.append(f"{tenant_id}: container gone")
        elif new.container_id != old.container_id:
            changes.append(f"{tenant_id}: container replaced")
        elif (new.started_at, new.restart_count) != (old.started_at, old.restart_count):
            changes.append(
                f"{tenant_id}: restarted (StartedAt {old.started_at} -> "
                f"{new.started_at}, RestartCount {old.restart_count} -> "
                f"{new.restart_count})"
            )
        elif new.status != "running":
            changes.append(f"{tenant_id}: container is {new.status}")
    return changes


def start_steps(daemon: BenchDaemon, healthy_at: float) -> dict[str, float | None]:
    """Return the seconds of each of ``START_STEPS`` in the daemon's last start.

    The log has millisecond timestamps. A step whose line is missing is None,
    and so is the step after it.
    """
    lines = daemon.log_path.read_text(errors="replace").splitlines()
    durations: dict[str, float | None] = {}
    previous: float | None = daemon.started_at
    for label, marker in START_STEPS:
        end = (
            healthy_at if marker is None else log_time(lines, marker, daemon.started_at)
        )
        if previous is None or end is None:
            durations[label] = None
        else:
            durations[label] = end - previous
        previous = end
    return durations


def log_time(lines: list[str], marker: str, after: float) -> float | None:
    """Return the epoch time of the first line after ``after`` with ``marker``."""
    for line in lines:
        if marker not in line:
            continue
        when = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        # Log times are cut to milliseconds, so allow for that much.
        if when >= after - 0.001:
            return when
    return None


class HttpsWatch:
    """Polls one tenant's ``/health`` through Caddy, as its users reach it.

    Connects to 127.0.0.1 with the tenant's host name for SNI and the Host
    header, so no name resolution is involved, and trusts the daemon's CA.
    """

    def __init__(self, daemon: BenchDaemon, tenant_name: str, ca_pem: str):
        self.host = f"{tenant_name}.{BASE_DOMAIN}"
        self.url = f"https://127.0.0.1:{daemon.https_port}/health"
        self.ssl_context = ssl.create_default_context(cadata=ca_pem)
        #: ``(epoch time, succeeded)`` of every request, in order.
        self.results: list[tuple[float, bool]] = []
        self._task: asyncio.Task | None = None

    async def check(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(
                self.url,
                headers={"Host": self.host},
                server_hostname=self.host,
                ssl=self.ssl_context,
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    async def _poll(self) -> None:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                succeeded = await self.check(session)
                self.results.append((time.time(), succeeded))
                await asyncio.sleep(POLL_SECONDS / 2)

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def succeeded_after(self, moment: float) -> float | None:
        """Return the time of the first success after ``moment``, if any."""
        for when, succeeded in self.results:
            if when > moment and succeeded:
                return when
        return None

    def longest_outage(self) -> float:
        """Return the longest time between two successes around failures."""
        longest = 0.0
        last_success = None
        failed_since = False
        for when, succeeded in self.results:
            if not succeeded:
                failed_since = True
            elif last_success is not None and failed_since:
                longest = max(longest, when - last_success)
            if succeeded:
                last_success = when
                failed_since = False
        return longest


async def wait_https(watch: HttpsWatch, moment: float, timeout: float = 60.0) -> float:
    """Wait until the watch succeeds after ``moment``; return that time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = watch.succeeded_after(moment)
        if found is not None:
            return found
        await asyncio.sleep(POLL_SECONDS)
    raise BenchError(f"timed out waiting for {watch.host} through Caddy")


async def restart_once(daemon: BenchDaemon, watch: HttpsWatch) -> dict[str, Any]:
    """Stop the daemon with SIGTERM, start it, and time each part."""
    watch.results.clear()
    watch.start()
    try:
        await wait_https(watch, 0.0)
        stop_seconds = await daemon.terminate()
        ready = await daemon.start()
        healthy_at = time.time()
        rows = await daemon.list_tenants()
        listed = time.time() - daemon.started_at
        https_back = await wait_https(watch, daemon.started_at)
    finally:
        await watch.stop()
    ready_rows = [
        row for row in rows if row["status"] == "available" and not row["operation"]
    ]

    return {
        "stop": stop_seconds,
        "ready": ready,
        "listed": listed,
        "available_at_first_list": len(ready_rows),
        "tenants": len(rows),
        "steps": start_steps(daemon, healthy_at),
        "https_after_start": https_back - daemon.started_at,
        "https_outage": watch.longest_outage(),
    }


async def watch_tenants(daemon: BenchDaemon, seconds: float) -> list[str]:
    """Poll the tenants list for ``seconds``; return each drop from available."""
    drops = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for row in await daemon.list_tenants():
            if row["status"] != "available" or row["operation"]:
                drops.append(f"{row['name']}: {row['status']} {row['operation'] or ''}")
        await asyncio.sleep(POLL_SECONDS * 10)
    return drops


async def repair_events(daemon: BenchDaemon, since: str) -> list[str]:
    """Return the repair and failure events recorded after ``since``."""
    found = []
    for row in await daemon.list_tenants():
        for event in await daemon.events(row["id"]):
            if event["created"] > since and event["action"] in ("repair", "failed"):
                found.append(f"{row['name']}: {event['action']}: {event['message']}")
    return found


async def empty_restart(daemon: BenchDaemon, restarts: int) -> list[float]:
    """Return the seconds to /health of restarts of a daemon with no tenants."""
    await daemon.start()
    figures = []
    for _ in range(restarts):
        await daemon.terminate()
        figures.append(await daemon.start())
    return figures


async def run_restart(args: argparse.Namespace) -> dict[str, Any]:
    image = default_image(args.zenml_version)
    settings = {
        "ZENPRO_TENANTS_ZENML_VERSION": args.zenml_version,
        "ZENPRO_RECONCILE_INTERVAL": str(args.reconcile_interval),
    }
    async with bench_run(args.keep_dir) as run:
        facts = machine_facts(run.client, image)
        print_facts(facts)
        empty_daemon = run.new_daemon(settings)
        empty = await empty_restart(empty_daemon, args.restarts)
        await empty_daemon.close()
        print(f"  daemon with no tenants, start to /health: {seconds_list(empty)} s")

        daemon = run.new_daemon(settings)
        await daemon.start()
        organization_id = await daemon.create_organization("bench")
        create_walls = []
        for first in range(0, args.tenants, args.batch):
            names = [
                f"r{index}"
                for index in range(first, min(first + args.batch, args.tenants))
            ]
            samples = await provision_tenants(daemon, organization_id, names)
            create_walls.append(wall_time(samples))
            print(f"  created {len(names)} tenants at once in {create_walls[-1]:.1f} s")

        https_watch = HttpsWatch(daemon, "r0", await daemon.ca_pem())
        before = await asyncio.to_thread(container_states, run.client, daemon)
        if len(before) != args.tenants:
            raise BenchError(f"expected {args.tenants} containers, found {len(before)}")
        restarts = []
        for index in range(args.restarts):
            since = datetime.now(timezone.utc).isoformat()
            figures = await restart_once(daemon, https_watch)
            figures["drops"] = await watch_tenants(daemon, args.watch)
            figures["repairs"] = await repair_events(daemon, since)
            after = await asyncio.to_thread(container_states, run.client, daemon)
            figures["changed"] = changed_containers(before, after)
            print(
                f"  restart {index + 1}: stop {figures['stop']:.2f} s, /health "
                f"{figures['ready']:.2f} s, {figures['available_at_first_list']}/"
                f"{figures['tenants']} available at first list, HTTPS through "
                f"Caddy down {figures['https_outage']:.2f} s, "
                f"{len(figures['changed'])} containers changed"
            )
            restarts.append(figures)
        errors = daemon.log_lines("ERROR")

    return report_restart(facts, args, empty, create_walls, restarts, errors)


def median_of(restarts: list[dict[str, Any]], key: str) -> float | None:
    values = [figures[key] for figures in restarts if figures[key] is not None]
    return statistics.median(values) if values else None


def report_restart(
    facts: dict[str, Any],
    args: argparse.Namespace,
    empty: list[float],
    create_walls: list[float],
    restarts: list[dict[str, Any]],
    errors: list[str],
) -> dict[str, Any]:
    ready = [figures["ready"] for figures in restarts]
    changed = sum(len(figures["changed"]) for figures in restarts)
    repairs = sum(len(figures["repairs"]) for figures in restarts)
    drops = sum(len(figures["drops"]) for figures in restarts)
    all_listed = all(
        figures["available_at_first_list"] == figures["tenants"] for figures in restarts
    )

    print()
    print(
        f"Daemon restart with {args.tenants} running tenants, {len(restarts)} restarts"
    )
    print(
        f"  start to /health, first reconcile pass done: median "
        f"{statistics.median(ready):.2f} s ({seconds_list(ready)}); goal < 2 s"
    )
    print(
        f"  the same with no tenants: median {statistics.median(empty):.2f} s "
        f"({seconds_list(empty)})"
    )
    print(
        f"  start to first tenants list: median {median_of(restarts, 'listed'):.2f} "
        f"s; every tenant available in it: {all_listed}"
    )
    print(f"  SIGTERM to exit: median {median_of(restarts, 'stop'):.2f} s")
    back = median_of(restarts, "https_after_start")
    outage = median_of(restarts, "https_outage")
    print(
        f"  a tenant's /health through Caddy, medians: back {back:.2f} s after "
        f"the start, down for {outage:.2f} s"
    )
    print("  where the start goes (medians, from the daemon's log):")
    for label, _ in START_STEPS:
        values = [
            figures["steps"][label]
            for figures in restarts
            if figures["steps"][label] is not None
        ]
        figure = f"{statistics.median(values):.3f} s" if values else "n/a"
        print(f"    {label:<38} {figure}")
    print(f"  containers restarted or replaced: {changed} (goal 0)")
    print(f"  repair or failure events: {repairs}")
    print(f"  tenants seen leaving 'available' while watched: {drops}")
    for figures in restarts:
        for line in figures["changed"] + figures["repairs"] + figures["drops"][:5]:
            print(f"    {line}")
    print(f"  daemon log: {len(errors)} ERROR lines")
    for line in errors[:5]:
        print(f"    {line}")
    print_load()
    return {
        "benchmark": "restart",
        "machine": facts,
        "tenants": args.tenants,
        "create_walls": create_walls,
        "empty_ready_seconds": empty,
        "restarts": restarts,
        "ready_median": statistics.median(ready),
        "containers_changed": changed,
        "repair_events": repairs,
        "daemon_error_lines": len(errors),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tenants", type=int, default=20, help="Running tenants (default 20)."
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=5,
        help="Tenants created at once while setting up (default 5). Larger "
        "batches on 2 cores can time out the servers' first API request.",
    )
    parser.add_argument(
        "--restarts", type=int, default=3, help="Daemon restarts measured (default 3)."
    )
    parser.add_argument(
        "--reconcile-interval",
        type=float,
        default=5.0,
        help="The daemon's reconcile interval, in seconds (default 5).",
    )
    parser.add_argument(
        "--watch",
        type=float,
        default=12.0,
        help="Seconds to watch the tenants after each restart; the default, 12, "
        "covers two timer passes at the default interval.",
    )
    add_common_flags(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        result = asyncio.run(run_restart(args))
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Benchmark took {time.monotonic() - started:.0f} s")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
