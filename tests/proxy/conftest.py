"""Fixtures for the proxy tests: a real Caddy, real upstreams, real HTTPS.

Every Caddy binds 127.0.0.1 on a free port, every upstream is an aiohttp
server on 127.0.0.1, and every client verifies certificates against the
daemon's CA. Host names are sent as SNI and ``Host`` while connections go to
127.0.0.1, so the tests do not depend on how ``*.localhost`` resolves.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from zenpro_local.proxy import Proxy, ProxyError, ProxySettings
from zenpro_local.proxy.caddy_process import CaddyProcess, find_caddy_binary

BASE_DOMAIN = "zp.localhost"

try:
    find_caddy_binary()
except ProxyError as error:  # pragma: no cover - depends on the machine
    pytest.skip(f"Caddy binary not found: {error}", allow_module_level=True)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str
) -> None:
    """Poll ``condition`` until it returns True, failing after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


class LoopbackResolver(AbstractResolver):
    """Resolve every host name to 127.0.0.1."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict


class HTTPSClient:
    """HTTPS requests to Caddy on 127.0.0.1, one new TLS connection each."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port = port
        self.context = context
        connector = aiohttp.TCPConnector(
            resolver=LoopbackResolver(), ssl=context, force_close=True
        )
        self.session = aiohttp.ClientSession(connector=connector)

    def url(self, host: str, path: str = "/") -> str:
        return f"https://{host}:{self.port}{path}"

    async def get(self, host: str, path: str = "/", **kwargs: Any) -> Reply:
        async with self.session.get(self.url(host, path), **kwargs) as response:
            text = await response.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        return Reply(response.status, body, dict(response.headers))

    async def served_certificate(self, host: str) -> bytes:
        """Return the leaf (DER) Caddy serves for ``host``, after verifying it."""
        _, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.context, server_hostname=host
        )
        try:
            return writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
            await writer.wait_closed()

    async def close(self) -> None:
        await self.session.close()


@dataclass
class Upstream:
    """An aiohttp server on 127.0.0.1 that names itself in every response."""

    name: str
    port: int
    runner: web.AppRunner
    requests: int = 0
    streams: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def data_dir() -> Path:
    """A short data folder (the Caddy admin socket path must stay short)."""
    path = Path(tempfile.mkdtemp(prefix="zp-proxy-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def upstreams() -> AsyncIterator[Callable[[str], Awaitable[Upstream]]]:
    """Start named upstream servers; all are stopped at teardown."""
    started: list[Upstream] = []

    async def start(name: str) -> Upstream:
        app = web.Application()
        upstream = Upstream(name, 0, web.AppRunner(app))

        async def echo(request: web.Request) -> web.Response:
            upstream.requests += 1
            return web.json_response(
                {
                    "upstream": name,
                    "host": request.host,
                    "path": request.path_qs,
                    "forwarded_for": request.headers.get("X-Forwarded-For"),
                }
            )

        async def stream(request: web.Request) -> web.StreamResponse:
            # Sends `chunks` lines, one every `interval` seconds.
            upstream.streams += 1
            chunks = int(request.query.get("chunks", "10"))
            interval = float(request.query.get("interval", "0.2"))
            response = web.StreamResponse()
            await response.prepare(request)
            for index in range(chunks):
                await response.write(f"{name} chunk {index}\n".encode())
                await asyncio.sleep(interval)
            await response.write_eof()
            return response

        async def websocket(request: web.Request) -> web.WebSocketResponse:
            socket_response = web.WebSocketResponse()
            await socket_response.prepare(request)
            async for message in socket_response:
                await socket_response.send_str(f"{name}: {message.data}")
            return socket_response

        app.router.add_get("/stream", stream)
        app.router.add_get("/ws", websocket)
        app.router.add_route("*", "/{tail:.*}", echo)
        await upstream.runner.setup()
        upstream.port = free_port()
        await web.TCPSite(upstream.runner, "127.0.0.1", upstream.port).start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        await upstream.runner.cleanup()


def proxy_settings(data_dir: Path, **overrides: Any) -> ProxySettings:
    """Return settings for a Caddy on 127.0.0.1 and a free HTTPS port."""
    values: dict[str, Any] = {
        "base_domain": BASE_DOMAIN,
        "data_dir": data_dir,
        "https_port": free_port(),
        "bind_address": "127.0.0.1",
        "admin_upstream": f"127.0.0.1:{free_port()}",
        "grace_period": 2.0,
    }
    values.update(overrides)
    return ProxySettings(**values)


@pytest.fixture
async def make_proxy(data_dir: Path) -> AsyncIterator[Callable[..., Awaitable[Proxy]]]:
    """Start proxies with :func:`proxy_settings`; all are closed at teardown."""
    proxies: list[Proxy] = []

    async def make(**overrides: Any) -> Proxy:
        proxy = Proxy(proxy_settings(data_dir, **overrides))
        proxies.append(proxy)
        await proxy.start()
        return proxy

    yield make
    # close() stops the embedded Caddy, with SIGKILL if SIGTERM is not enough.
    for proxy in reversed(proxies):
        await proxy.close()
        assert proxy.process is None or not proxy.process.running


@pytest.fixture
async def external_caddy(data_dir: Path) -> AsyncIterator[CaddyProcess]:
    """A Caddy the test starts itself, standing in for a system Caddy."""
    caddy = CaddyProcess(data_dir / "external")
    await caddy.start()
    yield caddy
    await caddy.stop()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[Proxy], HTTPSClient]]:
    """Make HTTPS clients that trust a proxy's CA; all closed at teardown."""
    clients: list[HTTPSClient] = []

    def make(proxy: Proxy) -> HTTPSClient:
        context = ssl.create_default_context(cadata=proxy.ca_pem().decode())
        client = HTTPSClient(proxy.settings.https_port, context)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
