"""Failed authentications from one address are rate limited with 429.

Each test runs a real daemon with a small ``auth.max_failures``; the unit
tests of :class:`AuthFailureLimiter` at the end use a clock of their own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager

import aiohttp
import pytest

from tests.core.helpers import assert_error, create_user, running_daemon
from zenpro_local.api.errors import ApiError
from zenpro_local.api.ratelimit import MAX_TRACKED_ADDRESSES, AuthFailureLimiter

LIMIT = 3
UNKNOWN_KEY = "ZENPROKEY_0123456789abcdef_" + "A" * 43


@asynccontextmanager
async def limited_daemon(tmp_path, window: float = 60.0):
    async with running_daemon(
        tmp_path / "data", auth_max_failures=LIMIT, auth_failure_window=window
    ) as daemon:
        yield daemon


async def _fail(daemon, times: int, key: str = UNKNOWN_KEY) -> list:
    return [
        await daemon.call("GET", "/api/v1/users/me", token=key) for _ in range(times)
    ]


async def test_failures_beyond_limit_get_429(tmp_path):
    async with limited_daemon(tmp_path) as daemon:
        user = await create_user(daemon, "target")
        revoked = await daemon.call(
            "POST", f"/api/v1/users/{user.id}/api_keys", json={}
        )
        await daemon.call(
            "DELETE", f"/api/v1/users/{user.id}/api_keys/{revoked.body['id']}"
        )

        # One of each kind of bad key counts: malformed, unknown, revoked.
        for key in ("ZENPROKEY_short", UNKNOWN_KEY, revoked.body["key"]):
            assert_error(await daemon.call("GET", "/api/v1/users/me", token=key), 401)
        limited = await daemon.call("GET", "/api/v1/users/me", token=UNKNOWN_KEY)

    error = assert_error(limited, 429)
    assert error["code"] == "too_many_requests"
    assert "try again in" in error["message"]
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 60


async def test_valid_key_not_limited(tmp_path):
    async with limited_daemon(tmp_path) as daemon:
        await _fail(daemon, LIMIT)
        assert_error((await _fail(daemon, 1))[0], 429)

        allowed = await daemon.call("GET", "/api/v1/users/me")
        still_limited = (await _fail(daemon, 1))[0]

    assert allowed.status == 200, allowed.body
    assert allowed.body["username"] == "admin"
    assert_error(still_limited, 429)


async def test_successes_do_not_count(tmp_path):
    async with limited_daemon(tmp_path) as daemon:
        for _ in range(LIMIT * 5):
            response = await daemon.call("GET", "/api/v1/users/me")
            assert response.status == 200, response.body
        failures = await _fail(daemon, LIMIT)

    for failure in failures:
        assert_error(failure, 401)


async def test_missing_credentials_do_not_count(tmp_path):
    async with limited_daemon(tmp_path) as daemon:
        anonymous = [
            await daemon.call("GET", "/api/v1/users/me", token=None)
            for _ in range(LIMIT * 3)
        ]
        failure = (await _fail(daemon, 1))[0]

    for response in anonymous:
        assert_error(response, 401)
    assert_error(failure, 401)


async def test_limit_is_per_address(tmp_path):
    async with limited_daemon(tmp_path) as daemon:
        await _fail(daemon, LIMIT + 1)

        # A client on another loopback address has its own count.
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as other:
            async with other.get(
                daemon.url + "/api/v1/users/me",
                headers={"Authorization": f"Bearer {UNKNOWN_KEY}"},
            ) as response:
                other_status = response.status
        limited_again = (await _fail(daemon, 1))[0]

    assert other_status == 401
    assert_error(limited_again, 429)


async def _fail_as(daemon, forwarded_for: str, local_address: str) -> int:
    connector = aiohttp.TCPConnector(local_addr=(local_address, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(
            daemon.url + "/api/v1/users/me",
            headers={
                "Authorization": f"Bearer {UNKNOWN_KEY}",
                "X-Forwarded-For": forwarded_for,
            },
        ) as response:
            return response.status


async def test_limit_per_forwarded_client(tmp_path):
    async with running_daemon(
        tmp_path / "data", auth_max_failures=LIMIT, auth_trusted_proxies="127.0.0.1"
    ) as daemon:
        statuses = [
            await _fail_as(daemon, "198.51.100.7", "127.0.0.1")
            for _ in range(LIMIT + 1)
        ]
        other_client = await _fail_as(daemon, "198.51.100.8", "127.0.0.1")

    assert statuses == [401] * LIMIT + [429]
    assert other_client == 401


async def test_forwarded_for_ignored_from_untrusted_peer(tmp_path):
    async with running_daemon(
        tmp_path / "data", auth_max_failures=LIMIT, auth_trusted_proxies="127.0.0.1"
    ) as daemon:
        statuses = [
            await _fail_as(daemon, f"198.51.100.{number}", "127.0.0.2")
            for number in range(LIMIT + 1)
        ]

    assert statuses == [401] * LIMIT + [429]


async def test_forwarded_for_ignored_by_default(tmp_path):
    async with limited_daemon(tmp_path) as daemon:
        statuses = [
            await _fail_as(daemon, f"198.51.100.{number}", "127.0.0.1")
            for number in range(LIMIT + 1)
        ]

    assert statuses == [401] * LIMIT + [429]


async def test_limit_lifts_after_window(tmp_path):
    window = 1.0
    async with limited_daemon(tmp_path, window=window) as daemon:
        await _fail(daemon, LIMIT)
        limited = (await _fail(daemon, 1))[0]
        limited_at = time.monotonic()

        deadline = limited_at + window + 5
        while time.monotonic() < deadline:
            response = (await _fail(daemon, 1))[0]
            if response.status != 429:
                break
            await asyncio.sleep(0.05)
        lifted_after = time.monotonic() - limited_at

    assert_error(limited, 429)
    assert limited.headers["Retry-After"] == "1"
    assert_error(response, 401)
    assert lifted_after <= window + 1


async def test_first_rejection_logged_once(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with limited_daemon(tmp_path) as daemon:
        await _fail(daemon, LIMIT + 5)

    warnings = [
        record
        for record in caplog.records
        if record.name == "zenpro_local.api.ratelimit"
        and record.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert "127.0.0.1" in warnings[0].getMessage()
    for record in caplog.records:
        assert UNKNOWN_KEY not in record.getMessage()
        assert "A" * 43 not in record.getMessage()


# The limiter alone, with a clock the tests move.


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_window_slides():
    clock = Clock()
    limiter = AuthFailureLimiter(max_failures=2, window=10.0, clock=clock)

    limiter.record_failure("a")
    clock.now += 4
    limiter.record_failure("a")
    assert limiter.retry_after("a") == pytest.approx(6.0)

    # The first failure leaves the window after 10 s; the second one 4 s later.
    clock.now += 6
    assert limiter.retry_after("a") is None
    limiter.record_failure("a")
    assert limiter.retry_after("a") == pytest.approx(4.0)


def test_limiter_rejection_not_counted():
    clock = Clock()
    limiter = AuthFailureLimiter(max_failures=1, window=10.0, clock=clock)
    unauthorized = ApiError(401, "invalid API key")

    assert limiter.failed("a", unauthorized) is unauthorized
    clock.now += 9
    rejected = limiter.failed("a", unauthorized)
    clock.now += 1

    assert rejected.status == 429
    assert rejected.headers["Retry-After"] == "1"
    assert limiter.retry_after("a") is None


def test_limiter_check_raises_when_limited():
    clock = Clock()
    limiter = AuthFailureLimiter(max_failures=1, window=10.0, clock=clock)
    limiter.check("a")
    limiter.record_failure("a")

    with pytest.raises(ApiError) as raised:
        limiter.check("a")
    assert raised.value.status == 429
    assert raised.value.headers["Retry-After"] == "10"


def test_limiter_tracked_addresses_bounded():
    clock = Clock()
    limiter = AuthFailureLimiter(max_failures=2, window=10.0, clock=clock)
    limiter.record_failure("first")
    limiter.record_failure("first")
    for number in range(MAX_TRACKED_ADDRESSES + 10):
        limiter.record_failure(f"client-{number}")

    assert len(limiter._failures) <= MAX_TRACKED_ADDRESSES
    # The least recently failing address is the one forgotten.
    assert limiter.retry_after("first") is None
