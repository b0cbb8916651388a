"""Reconcile after Caddy lost its configuration, and routes of others."""

from __future__ import annotations

import json
import os
import signal
import socket

import pytest

from zenpro_local.proxy import Proxy, ProxyError, Route
from zenpro_local.proxy.caddy_admin import CaddyAdmin
from zenpro_local.proxy.caddy_config import TENANTS_ROUTE_ID
from zenpro_local.proxy.caddy_process import CaddyProcess

from .conftest import BASE_DOMAIN, proxy_settings, wait_until

pytestmark = [pytest.mark.caddy, pytest.mark.timeout(120)]


def host(name: str) -> str:
    return f"{name}.{BASE_DOMAIN}"


async def served(client, name: str, upstream: str) -> bool:
    try:
        reply = await client.get(host(name))
    except OSError:
        return False
    return reply.status == 200 and reply.body.get("upstream") == upstream


async def test_killed_caddy_restarted_with_routes(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()
    client = client_for(proxy)
    old_pid = proxy.process.pid

    os.kill(old_pid, signal.SIGKILL)

    async def restarted() -> bool:
        pid = proxy.process.pid
        return pid is not None and pid != old_pid and await served(client, "one", "one")

    await wait_until(restarted, 20, "Caddy to restart and serve tenant t1")


async def test_truncated_autosave_restored(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.set_route(Route.unavailable("t2", host("two"), "stopped"))
    await proxy.wait_synced()
    client = client_for(proxy)
    autosave = proxy.process.autosave_path
    content = autosave.read_bytes()
    autosave.write_bytes(content[: len(content) // 2])
    old_pid = proxy.process.pid

    os.kill(old_pid, signal.SIGKILL)

    async def restarted() -> bool:
        pid = proxy.process.pid
        return pid is not None and pid != old_pid and await served(client, "one", "one")

    await wait_until(restarted, 20, "Caddy to restart and serve tenant t1")
    await proxy.wait_synced()
    assert (await client.get(host("two"))).status == 503
    saved = json.loads(autosave.read_text())
    assert "zenpro-tenant-one" in json.dumps(saved)
    moved_aside = list(autosave.parent.glob("autosave.invalid-*.json"))
    assert len(moved_aside) == 1
    assert moved_aside[0].read_bytes() == content[: len(content) // 2]


async def test_external_caddy_restarted_empty_reconciled(
    data_dir, external_caddy, upstreams, client_for
):
    one = await upstreams("one")
    settings = proxy_settings(
        data_dir, caddy_admin_address=external_caddy.admin_address.caddy_listen
    )
    async with Proxy(settings) as proxy:
        assert proxy.process is None
        routes = [Route.available("t1", host("one"), one.address)]
        await proxy.replace_all(routes)
        await proxy.wait_synced()
        client = client_for(proxy)
        assert await served(client, "one", "one")

        await external_caddy.stop()
        external_caddy.autosave_path.unlink()
        await external_caddy.start()
        config, _ = await proxy.admin.get("/config/")
        assert "apps" not in (config or {})

        await proxy.reconcile(routes)

        assert await served(client, "one", "one")
        config, _ = await proxy.admin.get("/config/")
        assert config["admin"]["listen"] == external_caddy.admin_address.caddy_listen


async def test_external_caddy_keeps_its_own_settings(data_dir, external_caddy):
    settings = proxy_settings(
        data_dir, caddy_admin_address=external_caddy.admin_address.caddy_listen
    )
    async with Proxy(settings) as proxy:
        config, _ = await proxy.admin.get("/config/")

    assert "storage" not in config
    assert "logging" not in config
    assert "pki" not in config["apps"]
    assert external_caddy.running


async def test_foreign_route_survives_reconcile(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    routes = [Route.available("t1", host("one"), one.address)]
    await proxy.replace_all(routes)
    await proxy.wait_synced()
    server = f"/config/apps/http/servers/{proxy.settings.server_name}"
    foreign = {
        "match": [{"host": [host("foreign")]}],
        "handle": [
            {"handler": "static_response", "status_code": 200, "body": "foreign"}
        ],
    }
    stale = {
        "@id": "zenpro-tenant-stale",
        "input": "stale",
        "outputs": ["127.0.0.1:1", "x", ""],
    }
    await proxy.admin.write("PUT", f"{server}/routes/0", foreign)
    await proxy.admin.write("PUT", f"/id/{TENANTS_ROUTE_ID}/handle/0/mappings/0", stale)

    await proxy.reconcile(routes)

    client = client_for(proxy)
    reply = await client.get(host("foreign"))
    assert reply.status == 200
    assert reply.body == "foreign"
    assert await served(client, "one", "one")
    assert (await client.get(host("stale"))).status == 404
    config, _ = await proxy.admin.get(f"{server}/routes")
    assert config[-1]["@id"] == "zenpro-catch-all"


async def test_foreign_route_after_catch_all_moved_before(make_proxy, client_for):
    proxy = await make_proxy()
    server = f"/config/apps/http/servers/{proxy.settings.server_name}"
    foreign = {
        "match": [{"host": [host("late")]}],
        "handle": [{"handler": "static_response", "status_code": 200, "body": "late"}],
    }
    await proxy.admin.write("POST", f"{server}/routes", foreign)
    assert (await client_for(proxy).get(host("late"))).status == 404

    await proxy.reconcile([])

    reply = await client_for(proxy).get(host("late"))
    assert reply.status == 200
    assert reply.body == "late"


async def test_reconcile_without_drift_writes_nothing(make_proxy, upstreams):
    one = await upstreams("one")
    proxy = await make_proxy()
    routes = [Route.available("t1", host("one"), one.address)]
    await proxy.reconcile(routes)
    reloads = proxy.reload_count

    await proxy.reconcile(routes)
    await proxy.reconcile(routes)

    assert proxy.reload_count == reloads


async def test_restart_of_proxy_reuses_ca_and_routes(data_dir, upstreams, client_for):
    one = await upstreams("one")
    settings = proxy_settings(data_dir)
    routes = [Route.available("t1", host("one"), one.address)]
    async with Proxy(settings) as first:
        await first.reconcile(routes)
        ca = first.ca_pem()
        certificate = first.certificate

    second = Proxy(settings)
    await second.start(routes)
    try:
        assert await served(client_for(second), "one", "one")
        assert second.ca_pem() == ca
        assert second.certificate == certificate
    finally:
        await second.close()


async def test_caddy_resumes_routes_from_autosave(data_dir, upstreams):
    one = await upstreams("one")
    settings = proxy_settings(data_dir)
    async with Proxy(settings) as proxy:
        await proxy.reconcile([Route.available("t1", host("one"), one.address)])

    caddy = CaddyProcess(settings.caddy_dir)
    await caddy.start()
    admin = CaddyAdmin(caddy.admin_address)
    try:
        entry, _ = await admin.get("/id/zenpro-tenant-one")
    finally:
        await admin.close()
        await caddy.stop()

    assert entry["input"] == "one"


async def test_failed_start_leaves_no_caddy(data_dir):
    # The HTTPS port is taken, so Caddy fails to load the configuration with
    # a 500, which is retried until admin_timeout.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = proxy_settings(
            data_dir, https_port=taken.getsockname()[1], admin_timeout=1.0
        )
        proxy = Proxy(settings)
        with pytest.raises(ProxyError, match="address already in use"):
            async with proxy:
                pass

    assert proxy.process.pid is None
    assert not proxy.process.running


async def test_tenant_map_of_older_layout_replaced(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    routes = [Route.available("t1", host("one"), one.address)]
    await proxy.replace_all(routes)
    await proxy.wait_synced()
    # Before the map was keyed by label, entries had the tenant id as @id,
    # the whole host as input, and the state as a second output.
    older = {
        "@id": TENANTS_ROUTE_ID,
        "handle": [
            {
                "handler": "map",
                "source": "{http.request.host}",
                "destinations": [
                    "{zenpro.upstream}",
                    "{zenpro.state}",
                    "{zenpro.revision}",
                    "{zenpro.reason}",
                ],
                "mappings": [
                    {
                        "@id": "zenpro-tenant-0b7e8a52-7a6e-4d0e-9d3c-3f1f1e0c2a11",
                        "input": host("gone"),
                        "outputs": [one.address, "available", "0123456789ab", ""],
                    }
                ],
                "defaults": ["", "unknown", "", ""],
            }
        ],
    }
    await proxy.admin.write("PATCH", f"/id/{TENANTS_ROUTE_ID}", older)

    await proxy.reconcile(routes)

    client = client_for(proxy)
    assert await served(client, "one", "one")
    assert (await client.get(host("gone"))).status == 404
