"""Rate limiting of failed authentications, per client address.

After ``auth.max_failures`` failed authentications from one address within
``auth.failure_window`` seconds, further failing attempts from that address
get 429 with ``Retry-After`` until the oldest of those failures is older
than the window. The window slides: each failure counts for exactly that
long.

Successful authentications do not count. An API key is checked before the
limit applies, so a valid key works even from an address that is being
limited. Keys are 256-bit random values, so the limit
does not protect them from guessing, but it stops a client that sends bad
keys in a loop. A password check must consult the limit first instead
(:meth:`AuthFailureLimiter.check` before verifying,
:meth:`AuthFailureLimiter.record_failure` after a wrong password), or a
limited client could still tell a right password from a wrong one.

The address is the TCP peer (``request.remote``), unless the peer is one of
``auth.trusted_proxies``. Then it is the last address of ``X-Forwarded-For``,
which Caddy sets to the address its own client connected from. IPv6 clients
count per /64 network, since one host may use any address of its network.

NOTE: no proxy is trusted by default. Caddy and local processes both
connect from loopback, so trusting loopback would let any local process
choose its address and escape the limit. Without it, every client behind
Caddy shares Caddy's address and its limit.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import deque
from typing import Callable

from aiohttp import web

from zenpro_local.api.errors import ApiError

logger = logging.getLogger(__name__)

# Largest number of addresses tracked at once. Beyond it, addresses with no
# failure inside the window are dropped first, then the least recently
# failing ones.
MAX_TRACKED_ADDRESSES = 10_000


class AuthFailureLimiter:
    """Counts failed authentications per address in a sliding window.

    Args:
        max_failures: failures from one address allowed within ``window``.
        window: length of the sliding window, in seconds.
        clock: monotonic time in seconds; tests may pass their own.
    """

    def __init__(
        self,
        max_failures: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        trusted_proxies: str = "",
    ):
        self.max_failures = max_failures
        self.window = window
        self.trusted_proxies = parse_networks(trusted_proxies)
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._warned_until: dict[str, float] = {}

    def retry_after(self, address: str) -> float | None:
        """Return the seconds until ``address`` may fail again, or None if now."""
        failures = self._failures.get(address)
        if failures is None or len(failures) < self.max_failures:
            return None
        remaining = self.window - (self._clock() - failures[0])
        return remaining if remaining > 0 else None

    def record_failure(self, address: str) -> None:
        """Count one failed authentication from ``address``."""
        failures = self._failures.pop(address, None)
        if failures is None:
            failures = deque(maxlen=self.max_failures)
        failures.append(self._clock())
        # Re-inserting keeps the dict ordered from least to most recent.
        self._failures[address] = failures
        if len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._prune()

    def check(self, address: str) -> None:
        """Raise the 429 if ``address`` is limited now; call before a password check.

        Raises:
            ApiError: 429 with ``Retry-After`` in seconds.
        """
        remaining = self.retry_after(address)
        if remaining is not None:
            raise self._reject(address, remaining)

    def failed(self, address: str, error: ApiError) -> ApiError:
        """Return the error to send for a failed authentication from ``address``.

        A failure from an address that is already limited becomes the 429
        and is not counted again, so the wait that ``Retry-After`` gives is
        exact. Any other failure is counted and ``error`` is returned.
        """
        remaining = self.retry_after(address)
        if remaining is not None:
            return self._reject(address, remaining)
        self.record_failure(address)
        return error

    def _reject(self, address: str, remaining: float) -> ApiError:
        seconds = max(1, math.ceil(remaining))
        now = self._clock()
        if now >= self._warned_until.get(address, 0.0):
            self._warned_until[address] = now + self.window
            logger.warning(
                "Rejecting authentication attempts from %s for %d s: %d failed "
                "within %g s",
                address,
                seconds,
                self.max_failures,
                self.window,
            )
        return ApiError(
            429,
            f"too many failed authentications from {address}: try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )

    def _prune(self) -> None:
        now = self._clock()
        for address in [
            address
            for address, failures in self._failures.items()
            if now - failures[-1] >= self.window
        ]:
            del self._failures[address]
            self._warned_until.pop(address, None)
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            oldest = next(iter(self._failures))
            del self._failures[oldest]
            self._warned_until.pop(oldest, None)


AUTH_LIMITER = web.AppKey("auth_limiter", AuthFailureLimiter)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(value: str) -> tuple[Network, ...]:
    """Return the networks of a comma-separated list of addresses or networks."""
    items = filter(None, (part.strip() for part in value.split(",")))
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def client_address(request: web.Request) -> str:
    """Return the address the limit applies to.

    That is the TCP peer, or the client a trusted proxy forwarded the
    request for.
    """
    peer = request.remote or "unknown"
    trusted = request.app[AUTH_LIMITER].trusted_proxies
    peer_address = _parse_address(peer)
    if peer_address is None:
        return peer
    if not any(peer_address in network for network in trusted):
        return _counted(peer_address)
    forwarded = request.headers.get("X-Forwarded-For", "")
    client = _parse_address(forwarded.rpartition(",")[2].strip())
    return _counted(client if client is not None else peer_address)


def _parse_address(text: str) -> Address | None:
    """Return the IP address in ``text`` without a zone, IPv4-mapped as IPv4."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _counted(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
