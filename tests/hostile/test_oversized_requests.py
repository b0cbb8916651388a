"""Requests over aiohttp's size limits: a clear 400, no secret in the log.

aiohttp's HTTP parser rejects these before any middleware runs, so the
response is aiohttp's own ``text/plain`` 400 rather than the API's JSON
error shape. The tests check that it is a 4xx that names the problem, that the
connection is closed, that the daemon keeps serving, and that the log line
aiohttp writes does not repeat a key that was in the rejected header.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.core.helpers import create_user
from tests.hostile.test_log_secrets import random_part

# aiohttp 3.14's limits: 8190 bytes per request line and header field.
LINE_LIMIT = 8190


async def _send_raw(daemon, head: bytes) -> tuple[bytes, bool]:
    """Send a raw request head; return the response and whether it was closed."""
    host, port = daemon.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
        closed = reader.at_eof()
    finally:
        writer.close()
        await writer.wait_closed()
    return response, closed


def _head(request_line: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [request_line, "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


CASES = {
    "request_line": lambda key: _head(
        f"GET /api/v1/users?q={'a' * (LINE_LIMIT + 10)} HTTP/1.1",
        [("Authorization", f"Bearer {key}")],
    ),
    "header_value": lambda key: _head(
        "GET /api/v1/users HTTP/1.1",
        [("Authorization", f"Bearer {key}"), ("X-Padding", "b" * (LINE_LIMIT + 10))],
    ),
    "authorization_header": lambda key: _head(
        "GET /api/v1/users HTTP/1.1",
        [("Authorization", f"Bearer {key}{'c' * (LINE_LIMIT + 10)}")],
    ),
    "header_count": lambda key: _head(
        "GET /api/v1/users HTTP/1.1",
        [("Authorization", f"Bearer {key}")]
        + [(f"X-Header-{number}", "v") for number in range(200)],
    ),
}


@pytest.mark.parametrize("case", CASES)
async def test_oversized_request_rejected(daemon, case, caplog):
    caplog.set_level(logging.DEBUG)
    user = await create_user(daemon, "sender")

    response, closed = await _send_raw(daemon, CASES[case](user.token))
    after = await daemon.call("GET", "/api/v1/users/me", token=user.token)

    status_line, _, rest = response.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2].decode(errors="replace")
    assert status_line.split()[1] == b"400", response[:300]
    assert "Got more than 8190 bytes" in body or "Too many headers" in body
    assert closed
    assert after.status == 200, after.body

    # The 400's body may quote the start of the line back to the client
    # that sent it, but the log must not.
    secret = random_part(user.token)
    assert secret not in caplog.text
