"""Host ports for tenant servers, chosen by the daemon and kept in the state DB.

Docker's ephemeral ports change on every container restart; the daemon
picks a port once per tenant, records it, and reuses it for the tenant's
whole life, so Caddy's routes stay valid.
"""

from __future__ import annotations

import itertools
import random
import socket

from zenpro_local.store import Store


class NoFreePortError(Exception):
    """Every port in the configured range is taken."""


def parse_range(text: str) -> range:
    low, _, high = text.partition("-")
    return range(int(low), int(high) + 1)


def is_bindable(port: int) -> bool:
    """Return whether nothing listens on 127.0.0.1:``port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def allocate(store: Store, ports: range) -> int:
    """Return a port of ``ports`` that no tenant uses and nothing listens on.

    The search starts at a random port of the range and wraps around. Two
    daemons on one machine with the same range would otherwise both pick
    its lowest free port while neither tenant server listens yet.

    Raises:
        NoFreePortError: naming the range, with the setting that widens it.
    """
    taken = {
        row["port"]
        for row in store.query_all("SELECT port FROM tenants WHERE port IS NOT NULL")
    }
    start = random.randrange(len(ports))
    for port in itertools.chain(ports[start:], ports[:start]):
        if port not in taken and is_bindable(port):
            return port
    raise NoFreePortError(
        f"no free port left in {ports.start}-{ports.stop - 1}: widen the "
        "tenants.port_range setting"
    )
