"""Every setting of the proxy package, validated once when constructed."""

from __future__ import annotations

import datetime
import enum
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from zenpro_local.pki import PKIError, check_wildcard_domain
from zenpro_local.proxy.caddy_admin import AdminAddress
from zenpro_local.proxy.errors import ProxyError
from zenpro_local.proxy.routes import check_hostname, check_upstream


class TLSMode(str, enum.Enum):
    """Source of the certificate for tenant hosts."""

    INTERNAL = "internal"  # the daemon's own CA signs a wildcard leaf
    ACME = "acme"  # Caddy obtains one certificate per host from an ACME CA
    FILES = "files"  # the operator provides a certificate and key file


@dataclass(frozen=True)
class ProxySettings:
    """How the daemon runs or reaches Caddy and what Caddy serves.

    Durations are in seconds unless the name says otherwise. Construction
    raises :class:`ProxyError` naming the first invalid field.

    Attributes:
        base_domain: Tenants are served at ``<tenant>.<base_domain>``.
        data_dir: The daemon's data folder; TLS files go to ``tls/`` and the
            embedded Caddy's files to ``caddy/`` inside it.
        https_port: Port of the HTTPS listener.
        http_port: Port of a plain HTTP listener that redirects to HTTPS, or
            None for no HTTP listener.
        bind_address: IP address the listeners bind to; empty binds every
            interface.
        admin_upstream: ``HOST:PORT`` of the daemon's admin API, which
            ``admin.<base_domain>`` is proxied to.
        admin_subdomain: Label of the admin host; no tenant may use it.
        tls_mode: Where certificates come from.
        certificate_file: With ``files``: PEM chain covering the hosts.
        key_file: With ``files``: PEM private key of ``certificate_file``.
        acme_email: With ``acme``: contact address given to the ACME CA.
        acme_permission_url: With ``acme``: URL Caddy asks before it obtains a
            certificate for a host (``?domain=HOST``; 200 allows it).
        caddy_admin_address: Admin address of an external Caddy (a Unix socket
            or loopback address); None starts Caddy as a child process.
        caddy_binary: Caddy executable for the child process; None looks next
            to the Python interpreter, then on PATH.
        certificate_lifetime_days: Lifetime of leaves from the daemon's CA.
        grace_period: Time Caddy gives open connections to finish when it
            stops or closes a listener.
        stream_close_delay: Time a WebSocket or other upgraded connection
            stays open after a reload, instead of being closed at once.
        coalesce_delay: Quiet time after a change before it is written, so a
            burst of changes becomes one write.
        max_coalesce_delay: Maximum time a change waits while changes keep
            coming.
        admin_timeout: Time one admin API call may take, retries included.
        probe_timeout: Time Caddy has to serve a change on its HTTPS port.
        server_name: Name of the daemon's server in Caddy's HTTP app.
    """

    base_domain: str
    data_dir: Path
    https_port: int = 443
    http_port: int | None = None
    bind_address: str = ""
    admin_upstream: str = "127.0.0.1:8740"
    admin_subdomain: str = "admin"
    tls_mode: TLSMode = TLSMode.INTERNAL
    certificate_file: Path | None = None
    key_file: Path | None = None
    acme_email: str = ""
    acme_permission_url: str = ""
    caddy_admin_address: str | None = None
    caddy_binary: Path | None = None
    certificate_lifetime_days: float = 90.0
    grace_period: float = 30.0
    stream_close_delay: float = 300.0
    coalesce_delay: float = 0.005
    max_coalesce_delay: float = 0.1
    admin_timeout: float = 10.0
    probe_timeout: float = 5.0
    server_name: str = "zenpro-local"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tls_mode", TLSMode(self.tls_mode))
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        try:
            self._check()
        except (ValueError, PKIError) as error:
            raise ProxyError(str(error)) from None

    @property
    def admin_host(self) -> str:
        """Host name of the admin API and dashboard."""
        return f"{self.admin_subdomain}.{self.base_domain}"

    @property
    def tls_dir(self) -> Path:
        """Folder of the daemon's CA and leaf certificates."""
        return self.data_dir / "tls"

    @property
    def caddy_dir(self) -> Path:
        """Folder of the embedded Caddy's socket, autosave, storage and log."""
        return self.data_dir / "caddy"

    @property
    def certificate_lifetime(self) -> datetime.timedelta:
        """``certificate_lifetime_days`` as a timedelta."""
        return datetime.timedelta(days=self.certificate_lifetime_days)

    @property
    def admin_address(self) -> AdminAddress | None:
        """The external Caddy's admin address, parsed; None when embedded."""
        if not self.caddy_admin_address:
            return None
        return AdminAddress.parse(self.caddy_admin_address)

    def host_for(self, subdomain: str) -> str:
        """Return the host name ``<subdomain>.<base_domain>``."""
        return f"{subdomain}.{self.base_domain}"

    def origin(self, host: str) -> str:
        """Return the HTTPS origin of ``host``, with the port unless it is 443."""
        if self.https_port == 443:
            return f"https://{host}"
        return f"https://{host}:{self.https_port}"

    def _check(self) -> None:
        check_hostname(self.base_domain)
        if self.bind_address:
            try:
                ipaddress.ip_address(self.bind_address)
            except ValueError:
                raise ValueError(
                    f"Invalid bind_address {self.bind_address!r}: expected an IP "
                    "address, or empty for every interface."
                ) from None
        check_hostname(self.admin_host)
        check_upstream(self.admin_upstream)
        for name in ("https_port", "http_port"):
            port = getattr(self, name)
            if port is not None and not 0 < port < 65536:
                raise ValueError(f"Invalid {name} {port}: expected 1 to 65535.")
        if self.http_port == self.https_port:
            raise ValueError(f"http_port and https_port are both {self.https_port}.")
        if self.certificate_lifetime_days <= 0:
            raise ValueError(
                "certificate_lifetime_days must be positive, got "
                f"{self.certificate_lifetime_days}."
            )
        self._check_tls()
        # Parsing checks that an external admin address is on this machine.
        _ = self.admin_address

    def _check_tls(self) -> None:
        if self.tls_mode is TLSMode.INTERNAL:
            check_wildcard_domain(self.base_domain)
        if self.tls_mode is TLSMode.FILES:
            for name in ("certificate_file", "key_file"):
                path = getattr(self, name)
                if path is None or not Path(path).is_file():
                    raise ValueError(
                        f"tls_mode 'files' needs {name}, but {path!r} is not a file."
                    )
