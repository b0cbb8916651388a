"""Requests through Caddy's HTTPS port that check what it serves for a host.

A probe connects to Caddy's listener on this machine, sends the tenant's host
name as SNI and ``Host``, and verifies the certificate: against the daemon's
CA in ``internal`` mode, against the operator's certificate in ``files`` mode.
It requests the probe path, which Caddy serves itself with the revision of
the route it applies, so a probe neither depends on the tenant being healthy
nor reaches the tenant's server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from zenpro_local.proxy.caddy_config import PROBE_PATH
from zenpro_local.proxy.errors import ProbeError
from zenpro_local.proxy.routes import Route

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.025


@dataclass(frozen=True)
class ProbeResult:
    """Caddy's response on the probe path for one host."""

    status: int
    body: Any  # parsed JSON, or None when the body was not JSON

    def describe(self) -> str:
        """Return a short description for error messages."""
        return f"status {self.status} with body {self.body!r}"


class RouteProbe:
    """Send probe requests to Caddy's HTTPS listener on this machine.

    Args:
        https_port: Port of Caddy's HTTPS listener.
        ssl_context: Context that verifies the served certificate.
        connect_address: Address the probe connects to, whatever the host.
        timeout: Time one expectation may take, retries included.
    """

    def __init__(
        self,
        https_port: int,
        ssl_context: ssl.SSLContext,
        connect_address: str = "127.0.0.1",
        timeout: float = 5.0,
    ) -> None:
        self.https_port = https_port
        self.ssl_context = ssl_context
        self.connect_address = connect_address
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, host: str) -> ProbeResult:
        """Request the probe path with ``host`` once.

        Raises:
            aiohttp.ClientError: The connection or TLS handshake failed.
            asyncio.TimeoutError: Caddy did not respond within two seconds.
        """
        session = self._open_session()
        url = f"https://{host}:{self.https_port}{PROBE_PATH}"
        timeout = aiohttp.ClientTimeout(total=min(self.timeout, 2.0))
        async with session.get(url, timeout=timeout) as response:
            text = await response.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        return ProbeResult(response.status, body)

    async def served_certificate(self, host: str) -> bytes:
        """Return the leaf certificate (DER) Caddy serves for ``host``.

        Raises:
            ssl.SSLError: The certificate does not verify.
            OSError: The connection failed.
            asyncio.TimeoutError: The handshake took over two seconds.
        """
        connection = asyncio.open_connection(
            self.connect_address,
            self.https_port,
            ssl=self.ssl_context,
            server_hostname=host,
        )
        _, writer = await asyncio.wait_for(connection, timeout=2.0)
        try:
            return writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
            await writer.wait_closed()

    async def expect_route(self, route: Route) -> ProbeResult:
        """Wait until Caddy serves exactly ``route`` for its host.

        Raises:
            ProbeError: Caddy served something else until the timeout.
        """

        def matches(result: ProbeResult) -> bool:
            body = result.body if isinstance(result.body, dict) else {}
            # The revision hashes every field of the route, its tenant id too.
            return result.status == 200 and body.get("revision") == route.revision

        expected = f"route {route.tenant_id} revision {route.revision}"
        return await self._expect_answer(route.host, matches, expected)

    async def expect_absent(self, host: str) -> ProbeResult:
        """Wait until no tenant route serves ``host``."""

        def matches(result: ProbeResult) -> bool:
            body = result.body if isinstance(result.body, dict) else {}
            return result.status == 404 and body.get("route") != "tenant"

        return await self._expect_answer(host, matches, "status 404")

    async def expect_admin(self, host: str) -> ProbeResult:
        """Wait until the admin route answers for ``host``."""

        def matches(result: ProbeResult) -> bool:
            body = result.body if isinstance(result.body, dict) else {}
            return result.status == 200 and body.get("route") == "admin"

        return await self._expect_answer(host, matches, "the admin route")

    async def expect_certificate(self, host: str, certificate: bytes) -> None:
        """Wait until Caddy serves the leaf ``certificate`` (DER) for ``host``."""

        async def check() -> tuple[bool, str]:
            served = await self.served_certificate(host)
            return served == certificate, "another certificate"

        await self._expect(host, check, "the new certificate")

    async def _expect_answer(self, host: str, matches, expected: str) -> ProbeResult:
        answer: list[ProbeResult] = []

        async def check() -> tuple[bool, str]:
            result = await self.fetch(host)
            answer[:] = [result]
            return matches(result), result.describe()

        await self._expect(host, check, expected)
        return answer[0]

    async def _expect(self, host: str, check, expected: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        observed = "no answer"
        while True:
            try:
                matched, observed = await check()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                observed = f"{error.__class__.__name__}: {error}"
            else:
                if matched:
                    return
            if loop.time() + POLL_INTERVAL >= deadline:
                raise ProbeError(
                    f"Caddy does not serve {expected} for {host} on port "
                    f"{self.https_port} after {self.timeout:g} s; last answer: "
                    f"{observed}"
                )
            await asyncio.sleep(POLL_INTERVAL)

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # A new connection per probe: each one must make its own TLS
            # handshake with the probed host's name.
            connector = aiohttp.TCPConnector(
                resolver=_FixedResolver(self.connect_address),
                ssl=self.ssl_context,
                force_close=True,
                limit=8,
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session


class _FixedResolver(AbstractResolver):
    """Resolve every host name to one address: Caddy's listener."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.family = socket.AF_INET6 if ":" in address else socket.AF_INET

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": self.address,
                "port": port,
                "family": self.family,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None
