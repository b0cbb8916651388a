"""The :class:`Route` type: what Caddy should do with one tenant's host name."""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass

# One DNS label: letters, digits and inner hyphens, at most 63 characters.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Tenant ids become part of Caddy @id values and of JSON bodies, so they are
# restricted to characters that need no escaping anywhere.
_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_REASON_LENGTH = 1000


class RouteState(str, enum.Enum):
    """Whether a tenant's host name reaches its server."""

    AVAILABLE = "available"  # proxied to the tenant's upstream
    UNAVAILABLE = "unavailable"  # Caddy responds with 503 and the reason


@dataclass(frozen=True)
class Route:
    """One tenant's host name and where Caddy sends its requests.

    Construct with :meth:`available` or :meth:`unavailable`. The constructor
    validates every field and raises ``ValueError`` naming the bad one.

    Attributes:
        tenant_id: The tenant's id; the proxy keeps one route per id.
        host: The tenant's host name, ``<tenant>.<base_domain>``. Its first
            label names the route in Caddy.
        upstream: ``HOST:PORT`` of the tenant's server; None when unavailable.
        state: Whether requests are proxied or get a 503 response.
        reason: Why the tenant is unavailable, shown to clients in the 503.
    """

    tenant_id: str
    host: str
    upstream: str | None = None
    state: RouteState = RouteState.AVAILABLE
    reason: str = ""

    def __post_init__(self) -> None:
        if not _TENANT_ID.match(self.tenant_id):
            raise ValueError(
                f"Invalid tenant id {self.tenant_id!r}: use 1 to 128 letters, "
                "digits, '_', '.' or '-', starting with a letter or digit."
            )
        check_hostname(self.host)
        object.__setattr__(self, "state", RouteState(self.state))
        if self.state is RouteState.AVAILABLE:
            if self.upstream is None:
                raise ValueError(
                    f"Route {self.tenant_id!r} is available but has no upstream."
                )
            check_upstream(self.upstream)
        if len(self.reason) > MAX_REASON_LENGTH:
            raise ValueError(
                f"Reason of route {self.tenant_id!r} is {len(self.reason)} "
                f"characters long; the maximum is {MAX_REASON_LENGTH}."
            )

    @classmethod
    def available(cls, tenant_id: str, host: str, upstream: str) -> Route:
        """Return a route that proxies ``host`` to ``upstream``."""
        return cls(tenant_id, host, upstream, RouteState.AVAILABLE)

    @classmethod
    def unavailable(cls, tenant_id: str, host: str, reason: str) -> Route:
        """Return a route that responds to ``host`` with 503 and ``reason``."""
        return cls(tenant_id, host, None, RouteState.UNAVAILABLE, reason)

    @property
    def revision(self) -> str:
        """Short hash of every field; Caddy serves it on the probe path."""
        fields = [self.tenant_id, self.host, self.upstream, self.state.value]
        fields.append(self.reason)
        digest = hashlib.sha256(json.dumps(fields).encode())
        return digest.hexdigest()[:8]


def check_hostname(host: str) -> None:
    """Raise ``ValueError`` unless ``host`` is a lowercase DNS name."""
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            f"Invalid host name {host!r}: use lowercase labels of letters, "
            "digits and inner hyphens, separated by dots."
        )


def check_upstream(upstream: str) -> None:
    """Raise ``ValueError`` unless ``upstream`` is ``IP:PORT`` or ``localhost:PORT``.

    IPv6 addresses are written in brackets, as in ``[::1]:8080``.
    """
    host, separator, port = upstream.rpartition(":")
    if not separator or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Invalid upstream {upstream!r}: expected HOST:PORT.")
    if host == "localhost":
        return
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"Invalid upstream {upstream!r}: the host must be an IP address "
            "or 'localhost'."
        ) from None
