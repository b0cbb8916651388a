"""An asyncio client for Caddy's admin API.

This client, not caddy-api-client, makes every call to Caddy, because
caddy-api-client 0.2.5 does not fit the daemon:

- it is synchronous, so it would block the event loop;
- it fails on a Caddy whose configuration is empty (``GET /config/`` returns
  null);
- it rewrites whole sections without ``If-Match``, so concurrent writers lose
  updates;
- it loads certificates with ``load_pem``, which copies private keys into
  Caddy's configuration and autosave file.

The admin API itself is small: JSON over HTTP, with objects addressed by path
or by ``@id``.

Only a Unix socket or a loopback address is accepted, because the admin API
has no authentication: whoever reaches it controls Caddy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from zenpro_local.proxy.errors import CaddyAdminError, ConfigChangedError, ProxyError

logger = logging.getLogger(__name__)

# Backoff between retries: full jitter over an exponential ceiling.
RETRY_BASE_DELAY = 0.05
RETRY_MAX_DELAY = 1.0


@dataclass(frozen=True)
class AdminAddress:
    """Address of Caddy's admin API: a Unix socket or a loopback TCP port."""

    unix_socket: Path | None = None
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, value: str) -> AdminAddress:
        """Parse an address in Caddy's syntax.

        Accepted forms: ``unix//run/caddy/admin.sock`` (optionally with a
        ``|0600`` file mode suffix), ``localhost:2019``, ``127.0.0.1:2019``,
        ``[::1]:2019`` and the same with an ``http://`` prefix.

        Raises:
            ProxyError: The address is malformed or not on this machine.
        """
        if value.startswith("unix/"):
            path = value[len("unix/") :].split("|", 1)[0]
            if not path:
                raise ProxyError(
                    f"Invalid Caddy admin address {value!r}: no socket path."
                )
            return cls(unix_socket=Path(path))

        text = value.removeprefix("http://").rstrip("/")
        host, separator, port = text.rpartition(":")
        if not separator or not port.isdigit() or not 0 < int(port) < 65536:
            raise ProxyError(
                f"Invalid Caddy admin address {value!r}: expected HOST:PORT or "
                "unix//PATH."
            )
        host = host.strip("[]")
        if not is_loopback(host):
            raise ProxyError(
                f"Caddy admin address {value!r} is not a loopback address or a "
                "Unix socket. Caddy's admin API has no authentication, so only "
                "addresses on this machine are accepted."
            )
        return cls(host=host, port=int(port))

    @property
    def caddy_listen(self) -> str:
        """The address in the syntax of Caddy's ``admin.listen`` setting."""
        if self.unix_socket is not None:
            return f"unix/{self.unix_socket}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.caddy_listen


class CaddyAdmin:
    """Calls to one Caddy's admin API, with retries on transient failures.

    Connection errors and 5xx responses are retried with jittered exponential
    backoff until ``timeout`` seconds have passed since the call began. A 4xx
    response raises :class:`CaddyAdminError` at once with Caddy's message.

    Attributes:
        write_count: Successful write requests so far. Caddy reloads its whole
            configuration once per write, so this counts reloads.
    """

    def __init__(self, address: AdminAddress, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        self.write_count = 0
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the HTTP session; the client can be used again afterwards."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path: str) -> tuple[Any, str | None]:
        """Return the JSON value at ``path`` and the configuration's ETag.

        A path with no value (an empty configuration) returns None.
        """
        return await self._call("GET", path, None, {})

    async def write(
        self,
        method: str,
        path: str,
        value: Any = None,
        *,
        if_match: str | None = None,
        force_reload: bool = False,
    ) -> None:
        """Change the configuration with POST, PUT, PATCH or DELETE.

        In Caddy, PUT on an array index inserts before that index, POST on an
        array appends, and PATCH replaces an existing value.

        Args:
            if_match: An ETag from :meth:`get`; the write then fails with
                :class:`ConfigChangedError` if the configuration changed since.
            force_reload: Reload even when the new configuration equals the
                old one, so Caddy reads certificate files again.
        """
        headers = {}
        if if_match is not None:
            headers["If-Match"] = if_match
        if force_reload:
            headers["Cache-Control"] = "must-revalidate"
        await self._call(method, path, value, headers)
        self.write_count += 1

    async def ping(self) -> bool:
        """Return whether the admin API responds, trying once."""
        try:
            session = self._open_session()
            timeout = aiohttp.ClientTimeout(total=2)
            async with session.get(self._url("/config/"), timeout=timeout) as response:
                return response.status == 200
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            return False

    async def _call(
        self, method: str, path: str, value: Any, headers: dict[str, str]
    ) -> tuple[Any, str | None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        attempt = 0
        while True:
            try:
                return await self._attempt(method, path, value, headers, deadline)
            except _RetryableError as error:
                attempt += 1
                delay = random.uniform(
                    0, min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2**attempt)
                )
                if loop.time() + delay >= deadline:
                    raise ProxyError(
                        f"Caddy admin API at {self.address} failed {method} {path} "
                        f"for {self.timeout:g} s: {error}"
                    ) from error
                logger.warning(
                    "Retrying %s %s on Caddy admin API in %.2f s (attempt %d): %s",
                    method,
                    path,
                    delay,
                    attempt,
                    error,
                )
                await asyncio.sleep(delay)

    async def _attempt(
        self,
        method: str,
        path: str,
        value: Any,
        headers: dict[str, str],
        deadline: float,
    ) -> tuple[Any, str | None]:
        session = self._open_session()
        remaining = max(0.1, deadline - asyncio.get_running_loop().time())
        data = None
        if method != "GET" and method != "DELETE":
            data = json.dumps(value)
            headers = {**headers, "Content-Type": "application/json"}
        try:
            async with session.request(
                method,
                self._url(path),
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=remaining),
            ) as response:
                text = await response.text()
                etag = response.headers.get("Etag")
        except asyncio.TimeoutError:
            raise ProxyError(
                f"Caddy admin API at {self.address} timed out on {method} {path}."
            ) from None
        except (aiohttp.ClientConnectionError, OSError) as error:
            raise _RetryableError(f"{error.__class__.__name__}: {error}") from error

        if response.status >= 500:
            raise _RetryableError(f"status {response.status}: {_message(text)}")
        if response.status == 412:
            raise ConfigChangedError(response.status, method, path, _message(text))
        if response.status >= 400:
            raise CaddyAdminError(response.status, method, path, _message(text))
        return (json.loads(text) if text.strip() else None), etag

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Caddy restarts its admin server on every configuration change,
            # so a kept-alive connection would often be dead on reuse.
            if self.address.unix_socket is not None:
                connector = aiohttp.UnixConnector(
                    path=str(self.address.unix_socket), force_close=True
                )
            else:
                connector = aiohttp.TCPConnector(force_close=True)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _url(self, path: str) -> str:
        if self.address.unix_socket is not None:
            return f"http://caddy-admin{path}"
        return f"http://{self.address.caddy_listen}{path}"


class _RetryableError(Exception):
    """A connection error or 5xx response worth another attempt."""


def _message(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip() or "(empty body)"
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return text.strip()


def is_loopback(host: str) -> bool:
    """Return whether ``host`` is ``localhost`` or a loopback IP address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
