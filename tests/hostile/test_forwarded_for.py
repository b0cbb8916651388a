"""The failed-authentication limit against forged X-Forwarded-For headers.

The daemon listens on 127.0.0.1 by default, and the README sends local
clients there directly, so a header from loopback is read only when
``auth.trusted_proxies`` lists it. Then spellings of one client share a
count.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import aiohttp
import pytest
from multidict import CIMultiDict

from tests.core.helpers import running_daemon

LIMIT = 3
# The peer of every request here, trusted as the embedded Caddy would be.
TRUSTED = "127.0.0.1"
UNKNOWN_KEY = "ZENPROKEY_0123456789abcdef_" + "A" * 43


@asynccontextmanager
async def limited_daemon(tmp_path, trusted_proxies: str = ""):
    async with running_daemon(
        tmp_path / "data", auth_max_failures=LIMIT, auth_trusted_proxies=trusted_proxies
    ) as daemon:
        yield daemon


async def _fail(session, daemon, headers) -> int:
    """Send one request with an unknown API key; return its status."""
    async with session.get(
        daemon.url + "/api/v1/users/me",
        headers={"Authorization": f"Bearer {UNKNOWN_KEY}", **headers},
    ) as response:
        await response.read()
        return response.status


async def _statuses(daemon, header_values, local_address="127.0.0.1"):
    connector = aiohttp.TCPConnector(local_addr=(local_address, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        return [
            await _fail(session, daemon, {"X-Forwarded-For": value})
            for value in header_values
        ]


async def test_direct_client_rotating_forwarded_for(tmp_path):
    # A local process talks to 127.0.0.1:8740 itself, with no Caddy between,
    # and no proxy is trusted by default.
    attempts = [f"198.51.100.{number}" for number in range(1, 10 * LIMIT + 1)]
    async with limited_daemon(tmp_path) as daemon:
        statuses = await _statuses(daemon, attempts)

    assert 429 in statuses, statuses


async def test_ipv6_clients_in_one_prefix(tmp_path):
    # Caddy would forward these for one IPv6 host that picks a new address
    # of its /64 for every attempt, as privacy addresses allow.
    attempts = [f"2001:db8:1:2::{number:x}" for number in range(1, 10 * LIMIT + 1)]
    async with limited_daemon(tmp_path, TRUSTED) as daemon:
        statuses = await _statuses(daemon, attempts)

    assert 429 in statuses, statuses


async def test_ipv6_scope_ids_one_client(tmp_path):
    # A zone index names an interface of the sender, not another client.
    attempts = [f"fe80::1%{number}" for number in range(1, 10 * LIMIT + 1)]
    async with limited_daemon(tmp_path, TRUSTED) as daemon:
        statuses = await _statuses(daemon, attempts)

    assert 429 in statuses, statuses


async def test_ipv4_mapped_forwarded_client(tmp_path):
    # The two spellings name one client, so they share one count.
    attempts = ["198.51.100.7", "::ffff:198.51.100.7"] * LIMIT
    async with limited_daemon(tmp_path, TRUSTED) as daemon:
        statuses = await _statuses(daemon, attempts)

    assert statuses[-1] == 429, statuses


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        ",",
        "198.51.100.7,",
        "198.51.100.7, ,",
        "not-an-address",
        "198.51.100.7:8080",
        "[2001:db8::1]",
        "fe80::1%eth0",
        "999.1.1.1",
        "0x7f.1",
        "\t198.51.100.7\t",
        "a" * 4000,
        ",".join(["198.51.100.7"] * 500),
    ],
)
async def test_odd_forwarded_for_no_5xx(tmp_path, value):
    async with limited_daemon(tmp_path, TRUSTED) as daemon:
        statuses = await _statuses(daemon, [value] * (LIMIT + 1))

    assert statuses[:LIMIT] == [401] * LIMIT, statuses
    assert statuses[LIMIT] == 429, statuses


async def test_repeated_forwarded_for_headers(tmp_path):
    # Only the first header line is read, so a client sending several lines
    # must not pick a fresh address through a later line either.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    statuses = []
    async with limited_daemon(tmp_path) as daemon:
        async with aiohttp.ClientSession(connector=connector) as session:
            for number in range(LIMIT + 1):
                headers = [
                    ("Authorization", f"Bearer {UNKNOWN_KEY}"),
                    ("X-Forwarded-For", f"198.51.100.{number}"),
                    ("X-Forwarded-For", f"203.0.113.{number}"),
                ]
                async with session.get(
                    daemon.url + "/api/v1/users/me",
                    headers=CIMultiDict(headers),
                ) as response:
                    statuses.append(response.status)

    assert statuses == [401] * LIMIT + [429]
