"""Tenant routes through a real Caddy over verified HTTPS."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import aiohttp
import pytest

from zenpro_local.proxy import ProxyError, Route
from zenpro_local.proxy.caddy_config import PROBE_PATH

from .conftest import BASE_DOMAIN, free_port, wait_until

pytestmark = [pytest.mark.caddy, pytest.mark.timeout(120)]


def host(name: str) -> str:
    return f"{name}.{BASE_DOMAIN}"


async def test_two_tenants_reach_own_upstreams(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    two = await upstreams("two")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.set_route(Route.available("t2", host("two"), two.address))
    await proxy.wait_synced()

    client = client_for(proxy)
    first = await client.get(host("one"), "/api/v1/info?x=1")
    second = await client.get(host("two"), "/")

    assert first.status == 200
    assert first.body["upstream"] == "one"
    assert first.body["path"] == "/api/v1/info?x=1"
    assert first.body["host"] == f"{host('one')}:{proxy.settings.https_port}"
    assert second.status == 200
    assert second.body["upstream"] == "two"


async def test_forwarded_for_set_by_caddy(make_proxy, upstreams, client_for):
    # The daemon's rate limit counts the client that X-Forwarded-For names
    # when Caddy is the peer, so a client must not be able to choose it.
    one = await upstreams("one")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()

    client = client_for(proxy)
    reply = await client.get(
        host("one"), "/", headers={"X-Forwarded-For": "203.0.113.9"}
    )

    assert reply.status == 200
    assert reply.body["forwarded_for"] == "127.0.0.1"


async def test_localhost_name_resolves_to_caddy(make_proxy, upstreams):
    # Debian's libnss-myhostname resolves *.localhost to the loopback
    # addresses; this test uses the system resolver, unlike the others.
    try:
        socket.getaddrinfo(host("one"), None)
    except socket.gaierror:
        pytest.skip(f"{host('one')} does not resolve; install libnss-myhostname")
    one = await upstreams("one")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()
    context = ssl.create_default_context(cadata=proxy.ca_pem().decode())

    async with aiohttp.ClientSession() as session:
        url = f"https://{host('one')}:{proxy.settings.https_port}/"
        async with session.get(url, ssl=context) as response:
            status = response.status
            body = await response.json()

    assert status == 200
    assert body["upstream"] == "one"


async def test_unavailable_tenant_gets_503_with_reason(make_proxy, client_for):
    proxy = await make_proxy()
    reason = 'Deactivated by an admin: {"note": "billing"} \\ done'
    await proxy.set_route(Route.unavailable("t1", host("one"), reason))
    await proxy.wait_synced()

    reply = await client_for(proxy).get(host("one"), "/api/v1/pipelines")

    assert reply.status == 503
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.body["error"] == "tenant_unavailable"
    assert reply.body["host"] == host("one")
    assert reply.body["reason"] == reason


async def test_unavailable_reason_placeholders_not_expanded(make_proxy, client_for):
    proxy = await make_proxy()
    reason = "{http.request.remote} {env.HOME} {http.request.header.Authorization}"
    await proxy.set_route(Route.unavailable("t1", host("one"), reason))
    await proxy.wait_synced()

    reply = await client_for(proxy).get(
        host("one"), "/", headers={"Authorization": "Bearer secret-token"}
    )

    assert reply.status == 503
    assert reply.body["reason"] == reason


async def test_tenant_becomes_available_again(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    await proxy.set_route(Route.unavailable("t1", host("one"), "starting"))
    await proxy.wait_synced()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()

    reply = await client_for(proxy).get(host("one"))

    assert reply.status == 200
    assert reply.body["upstream"] == "one"


async def test_unknown_host_gets_404(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()

    client = client_for(proxy)
    unknown = await client.get(host("nobody"), "/")
    bare_domain = await client.get(BASE_DOMAIN, "/")

    assert unknown.status == 404
    assert unknown.body["error"] == "not_found"
    assert bare_domain.status == 404
    assert one.requests == 0


async def test_removed_route_gets_404(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()
    await proxy.remove_route("t1")
    await proxy.wait_synced()

    reply = await client_for(proxy).get(host("one"))

    assert reply.status == 404
    assert "t1" not in proxy.routes
    config, _ = await proxy.admin.get("/config/")
    assert "zenpro-tenant-one" not in str(config)


async def test_remove_route_twice_is_harmless(make_proxy):
    proxy = await make_proxy()
    await proxy.remove_route("never-added")
    await proxy.wait_synced()
    assert proxy.routes == {}


async def test_renamed_tenant_moves_host(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("old-name"), one.address))
    await proxy.wait_synced()
    writes = proxy.reload_count
    await proxy.set_route(Route.available("t1", host("new-name"), one.address))
    await proxy.wait_synced()

    client = client_for(proxy)
    assert proxy.reload_count == writes + 1
    assert (await client.get(host("new-name"))).status == 200
    assert (await client.get(host("old-name"))).status == 404


async def test_replace_all_sets_whole_route_set(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()
    await proxy.replace_all(
        [
            Route.available("t2", host("two"), one.address),
            Route.unavailable("t3", host("three"), "stopped"),
        ]
    )
    await proxy.wait_synced()

    client = client_for(proxy)
    assert (await client.get(host("one"))).status == 404
    assert (await client.get(host("two"))).status == 200
    assert (await client.get(host("three"))).status == 503


async def test_admin_host_reaches_admin_upstream(make_proxy, upstreams, client_for):
    daemon = await upstreams("daemon")
    proxy = await make_proxy(admin_upstream=daemon.address)

    reply = await client_for(proxy).get(f"admin.{BASE_DOMAIN}", "/api/v1/ca.pem")

    assert reply.status == 200
    assert reply.body["upstream"] == "daemon"
    assert reply.body["path"] == "/api/v1/ca.pem"


async def test_upstream_down_gets_json_502(make_proxy, client_for):
    proxy = await make_proxy()
    await proxy.set_route(
        Route.available("t1", host("one"), f"127.0.0.1:{free_port()}")
    )
    await proxy.wait_synced()

    reply = await client_for(proxy).get(host("one"))

    assert reply.status == 502
    assert reply.body["error"] == "proxy_error"


async def test_probe_path_names_route_revision(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    route = Route.available("t1", host("one"), one.address)
    await proxy.set_route(route)
    await proxy.wait_synced()

    reply = await client_for(proxy).get(host("one"), PROBE_PATH)

    assert reply.body == {
        "route": "tenant",
        "revision": route.revision,
        "state": "available",
    }
    assert one.requests == 0


async def test_http_port_redirects_to_https(make_proxy):
    http_port = free_port()
    proxy = await make_proxy(http_port=http_port)
    https_port = proxy.settings.https_port

    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"http://127.0.0.1:{http_port}/api/v1/x?y=1",
            headers={"Host": host("one")},
            allow_redirects=False,
        ) as response:
            status = response.status
            location = response.headers["Location"]

    assert status == 308
    assert location == f"https://{host('one')}:{https_port}/api/v1/x?y=1"


async def test_host_outside_base_domain_rejected(make_proxy):
    proxy = await make_proxy()
    with pytest.raises(ValueError, match="not one label under the base domain"):
        await proxy.set_route(Route.available("t1", "one.example.com", "127.0.0.1:1"))
    with pytest.raises(ValueError, match="use 'deeper.zp.localhost'"):
        deeper = Route.available("t1", f"deeper.{host('one')}", "127.0.0.1:1")
        await proxy.set_route(deeper)


async def test_admin_host_rejected_for_tenant(make_proxy):
    proxy = await make_proxy()
    with pytest.raises(ValueError, match="admin host"):
        await proxy.set_route(
            Route.available("t1", f"admin.{BASE_DOMAIN}", "127.0.0.1:1")
        )


async def test_host_of_other_tenant_rejected(make_proxy):
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), "127.0.0.1:1"))
    with pytest.raises(ValueError, match="already belongs to tenant t1"):
        await proxy.set_route(Route.available("t2", host("one"), "127.0.0.1:2"))


async def test_burst_of_50_changes_few_reloads(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    reloads_before = proxy.reload_count

    for index in range(50):
        await proxy.set_route(
            Route.available(f"t{index}", host(f"n{index}"), one.address)
        )
        # Changes arrive one millisecond apart, as from separate requests.
        await asyncio.sleep(0.001)
    await proxy.wait_synced()

    reloads = proxy.reload_count - reloads_before
    assert reloads <= 5, f"{reloads} Caddy reloads for a burst of 50 changes"
    client = client_for(proxy)
    for index in (0, 25, 49):
        assert (await client.get(host(f"n{index}"))).status == 200


async def test_change_keeps_other_tenants_long_request(
    make_proxy, upstreams, client_for
):
    one = await upstreams("one")
    two = await upstreams("two")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()
    client = client_for(proxy)

    async def long_request() -> str:
        async with client.session.get(
            client.url(host("one"), "/stream?chunks=15&interval=0.2")
        ) as response:
            return await response.text()

    streaming = asyncio.create_task(long_request())

    async def stream_started() -> bool:
        return one.streams == 1

    await wait_until(stream_started, 5, "the long request to start")
    durations = []
    for index in range(3):
        started = time.monotonic()
        await proxy.set_route(
            Route.available(f"b{index}", host(f"b{index}"), two.address)
        )
        await proxy.wait_synced()
        durations.append(time.monotonic() - started)
    changed_during_request = not streaming.done()
    text = await streaming

    assert changed_during_request
    assert max(durations) < 2.0, f"changes took {durations} s during a long request"
    assert text.count("chunk") == 15
    assert text.endswith("one chunk 14\n")


async def test_reload_keeps_other_tenants_websocket(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    two = await upstreams("two")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()
    client = client_for(proxy)

    async with client.session.ws_connect(client.url(host("one"), "/ws")) as websocket:
        await websocket.send_str("before")
        before = await websocket.receive_str(timeout=5)
        await proxy.set_route(Route.available("t2", host("two"), two.address))
        await proxy.wait_synced()
        await websocket.send_str("after")
        after = await websocket.receive_str(timeout=5)

    assert before == "one: before"
    assert after == "one: after"


async def test_caddy_4xx_raises_with_caddy_message(make_proxy):
    proxy = await make_proxy()
    # Another server holding the @id that the tenant's entry needs makes
    # Caddy reject the insert with 400 "duplicate ID".
    squatter = {
        "listen": [f"127.0.0.1:{free_port()}"],
        "routes": [
            {"@id": "zenpro-tenant-one", "handle": [{"handler": "static_response"}]}
        ],
    }
    await proxy.admin.write("PUT", "/config/apps/http/servers/squatter", squatter)

    await proxy.set_route(Route.available("t1", host("one"), "127.0.0.1:1"))
    with pytest.raises(ProxyError) as caught:
        await proxy.wait_synced()

    message = str(caught.value)
    assert "status 400" in message
    assert "duplicate ID 'zenpro-tenant-one'" in message


async def test_wait_synced_recovers_after_failure(make_proxy, upstreams, client_for):
    one = await upstreams("one")
    proxy = await make_proxy()
    squatter = {
        "listen": [f"127.0.0.1:{free_port()}"],
        "routes": [
            {"@id": "zenpro-tenant-one", "handle": [{"handler": "static_response"}]}
        ],
    }
    await proxy.admin.write("PUT", "/config/apps/http/servers/squatter", squatter)
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    with pytest.raises(ProxyError):
        await proxy.wait_synced()

    await proxy.admin.write("DELETE", "/config/apps/http/servers/squatter")
    await proxy.reconcile(list(proxy.routes.values()))

    assert (await client_for(proxy).get(host("one"))).status == 200
