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
import statistics
import sys
import time
from datetime import datetime, timezone
from typing import Any, NamedTuple

import docker

from tenant_provisioning import (
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

# Log lines of the daemon that mark the start of serve and the open socket.
_STARTING_LINE = "Starting zenpro-local"
_LISTENING_LINE = "Admin API listening"


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


def log_time(daemon: BenchDaemon, marker: str) -> float | None:
    """Return the epoch time of the last log line containing ``marker``."""
    found = None
    for line in daemon.log_path.read_text(errors="replace").splitlines():
        if marker in line:
            found = line[:23]
    if found is None:
        return None
    return datetime.strptime(found, "%Y-%m-%d %H:%M:%S,%f").timestamp()


async def restart_once(daemon: BenchDaemon) -> dict[str, Any]:
    """Stop the daemon with SIGTERM, start it, and time each part."""
    stop_seconds = daemon.terminate()
    ready = await daemon.start()
    healthy_at = time.time()
    rows = await daemon.list_tenants()
    listed = time.time() - daemon.started_at
    ready_rows = [
        row for row in rows if row["status"] == "available" and not row["operation"]
    ]

    starting = log_time(daemon, _STARTING_LINE)
    listening = log_time(daemon, _LISTENING_LINE)
    return {
        "stop": stop_seconds,
        "ready": ready,
        "listed": listed,
        "available_at_first_list": len(ready_rows),
        "tenants": len(rows),
        # The log has millisecond timestamps.
        "to_starting_line": starting - daemon.started_at if starting else None,
        "starting_to_listening": (
            listening - starting if starting and listening else None
        ),
        "listening_to_health": healthy_at - listening if listening else None,
    }


async def watch(daemon: BenchDaemon, seconds: float) -> list[str]:
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
        daemon.terminate()
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
        empty = await empty_restart(run.new_daemon(settings), args.restarts)
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

        before = await asyncio.to_thread(container_states, run.client, daemon)
        if len(before) != args.tenants:
            raise BenchError(f"expected {args.tenants} containers, found {len(before)}")
        restarts = []
        for index in range(args.restarts):
            since = datetime.now(timezone.utc).isoformat()
            figures = await restart_once(daemon)
            figures["drops"] = await watch(daemon, args.watch)
            figures["repairs"] = await repair_events(daemon, since)
            after = await asyncio.to_thread(container_states, run.client, daemon)
            figures["changed"] = changed_containers(before, after)
            print(
                f"  restart {index + 1}: stop {figures['stop']:.2f} s, /health "
                f"{figures['ready']:.2f} s, {figures['available_at_first_list']}/"
                f"{figures['tenants']} available at first list, "
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
    print("  where the start goes (medians, from the daemon's log):")
    for label, key in (
        ("interpreter, imports, settings", "to_starting_line"),
        ("state, runtime, first reconcile pass", "starting_to_listening"),
        ("socket open to /health returning 200", "listening_to_health"),
    ):
        value = median_of(restarts, key)
        figure = "n/a" if value is None else f"{value:.3f} s"
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
        default=10,
        help="Tenants created at once while setting up (default 10).",
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
