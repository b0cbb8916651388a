"""The :class:`Proxy`: the daemon's one entry point to Caddy."""

from __future__ import annotations

import asyncio
import datetime
import logging

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from zenpro_local.pki import CertificatePaths
from zenpro_local.proxy.caddy_admin import CaddyAdmin
from zenpro_local.proxy.caddy_config import DesiredConfig, render_desired
from zenpro_local.proxy.caddy_process import CaddyProcess
from zenpro_local.proxy.certificates import CertificateSource, certificate_source
from zenpro_local.proxy.probe import RouteProbe
from zenpro_local.proxy.routes import Route
from zenpro_local.proxy.settings import ProxySettings
from zenpro_local.proxy.writer import RouteWriter

logger = logging.getLogger(__name__)

# Shortest time between two starts of the embedded Caddy, so a Caddy that
# crashes at once is not restarted in a tight loop.
RESTART_INTERVAL = 1.0


class Proxy:
    """Routes for every tenant host in Caddy, with their certificate.

    Use it as an async context manager, or call :meth:`start` and
    :meth:`close`; in an aiohttp ``cleanup_ctx``::

        async def proxy_ctx(app):
            async with Proxy(settings) as proxy:
                app[PROXY] = proxy
                yield

    Route changes (:meth:`set_route`, :meth:`remove_route`,
    :meth:`replace_all`) return once queued; :meth:`wait_synced` returns when
    Caddy serves them. All methods run on the event loop that started the
    proxy.
    """

    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self.certificates: CertificateSource = certificate_source(settings)
        external = settings.admin_address
        self.process: CaddyProcess | None = None
        if external is None:
            # SIGKILL only after Caddy's own grace period for open requests.
            self.process = CaddyProcess(
                settings.caddy_dir,
                settings.caddy_binary,
                stop_timeout=settings.grace_period + 5,
            )
        address = external or self.process.admin_address
        self.admin = CaddyAdmin(address, timeout=settings.admin_timeout)
        self.probe: RouteProbe | None = None
        self.writer = RouteWriter(
            self.admin,
            self._render,
            settings.server_name,
            settings.base_domain,
            admin_host=settings.admin_host,
            ensure_caddy=self._ensure_caddy if self.process else None,
            coalesce_delay=settings.coalesce_delay,
            max_coalesce_delay=settings.max_coalesce_delay,
        )
        self._certificate: CertificatePaths | None = None
        self._watcher: asyncio.Task | None = None
        self._last_start = float("-inf")

    async def __aenter__(self) -> Proxy:
        try:
            await self.start()
        except BaseException:
            # Without this, a failed start would leave Caddy running.
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    @property
    def reload_count(self) -> int:
        """Configuration writes to Caddy so far; each one is a Caddy reload."""
        return self.admin.write_count

    @property
    def routes(self) -> dict[str, Route]:
        """The desired routes by tenant id."""
        return self.writer.routes

    @property
    def certificate(self) -> CertificatePaths | None:
        """The certificate files Caddy loads; None in ``acme`` mode."""
        return self._certificate

    async def start(self, routes: list[Route] | None = None) -> None:
        """Prepare certificates, start or reach Caddy, and load the configuration.

        Args:
            routes: The tenant routes to serve from the start. Routes of the
                daemon that Caddy has but ``routes`` lacks are removed.

        Raises:
            ValueError: A host is invalid, or two routes share one.
            ProxyError: Caddy could not be started, reached or configured.
            PKIError: The CA or leaf could not be created or read.
        """
        self._certificate = await asyncio.to_thread(self.certificates.prepare)
        context = self.certificates.ssl_context()
        if context is not None:
            self.probe = RouteProbe(
                self.settings.https_port,
                context,
                connect_address=_connect_address(self.settings.bind_address),
                timeout=self.settings.probe_timeout,
            )
            self.writer.probe = self.probe
        else:
            logger.info(
                "TLS mode %s: changes are checked without HTTPS probes",
                self.settings.tls_mode.value,
            )

        if routes:
            self._check_hosts(routes)
            self.writer.replace(routes)
        self.writer.start()
        await self.writer.wait(self.writer.request_full())
        await asyncio.to_thread(self.certificates.committed, self._certificate)
        logger.info(
            "Proxy ready: tenants at %s, admin API at %s",
            self.settings.origin(f"<tenant>.{self.settings.base_domain}"),
            self.settings.origin(self.settings.admin_host),
        )

    async def close(self) -> None:
        """Stop the writer and the embedded Caddy; an external Caddy keeps running.

        Changes not yet written are dropped; the next start reconciles them.
        """
        await self.writer.close()
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self.probe is not None:
            await self.probe.close()
        await self.admin.close()
        if self.process is not None:
            await self.process.stop()

    async def set_route(self, route: Route) -> None:
        """Add or replace the route of ``route.tenant_id``.

        Raises:
            ValueError: The host is not one label under the base domain, is
                the admin host, or belongs to another tenant.
        """
        self._check_host(route)
        self.writer.set(route)

    async def remove_route(self, tenant_id: str) -> None:
        """Remove a tenant's route; its host then gets 404. Idempotent."""
        self.writer.remove(tenant_id)

    async def replace_all(self, routes: list[Route]) -> None:
        """Make ``routes`` the whole set of tenant routes.

        Raises:
            ValueError: A host is invalid, or two routes share one.
        """
        self._check_hosts(routes)
        self.writer.replace(routes)

    async def reconcile(self, routes: list[Route]) -> None:
        """Put Caddy back in the desired state, whatever happened to it.

        Starts the embedded Caddy if it is not running, reads Caddy's whole
        configuration, and puts back the base configuration, the certificate
        and every route in ``routes`` where they are missing or differ. Other
        routes are left as they are. Writes nothing when nothing differs.

        Raises:
            ValueError: A host is invalid, or two routes share one.
            ProxyError: Caddy could not be reached, or rejected the change.
        """
        self._check_hosts(routes)
        self.writer.replace(routes)
        await self.writer.wait(self.writer.request_full())

    async def wait_synced(self) -> None:
        """Return when every queued change is in Caddy and was probed.

        Raises:
            ProxyError: Applying the changes failed; the message gives the reason.
        """
        await self.writer.wait()

    def ca_pem(self) -> bytes | None:
        """Return the daemon's CA certificate (PEM); None outside ``internal``."""
        return self.certificates.ca_pem()

    def allows_certificate(self, domain: str) -> bool:
        """Tell whether Caddy may obtain a certificate for ``domain`` (``acme``)."""
        domain = domain.lower().rstrip(".")
        if domain == self.settings.admin_host:
            return True
        return any(route.host == domain for route in self.writer.routes.values())

    async def renew_certificate(self, now: datetime.datetime | None = None) -> bool:
        """Renew or reload the certificate if due, and wait until Caddy serves it.

        In ``internal`` mode the leaf is renewed at two thirds of its
        lifetime. In ``files`` mode the files are reloaded when their content
        changed. In ``acme`` mode Caddy renews by itself, so this does
        nothing. Meant to be called from a timer.

        Returns:
            True when Caddy now serves a new certificate.

        Raises:
            ProxyError: Caddy could not load or does not serve the certificate.
        """
        if not await asyncio.to_thread(self.certificates.due, now):
            return False
        # The new leaf is issued at the real current time, whatever ``now`` is.
        paths = await asyncio.to_thread(self.certificates.renew)
        self._certificate = paths
        force_reload = self.certificates.reload_in_place
        await self.writer.wait(self.writer.request_full(force_reload=force_reload))
        if self.probe is not None and paths is not None:
            served = await asyncio.to_thread(_leaf_der, paths)
            await self.probe.expect_certificate(self.settings.admin_host, served)
        await asyncio.to_thread(self.certificates.committed, paths)
        logger.info(
            "Caddy serves the new certificate %s", paths.certificate if paths else ""
        )
        return True

    def _render(self, routes: list[Route]) -> DesiredConfig:
        admin_listen = self.admin.address.caddy_listen
        owns_caddy = self.process is not None
        return render_desired(
            self.settings, routes, self._certificate, admin_listen, owns_caddy
        )

    async def _ensure_caddy(self) -> None:
        if self.process.running:
            return
        loop = asyncio.get_running_loop()
        delay = self._last_start + RESTART_INTERVAL - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._last_start = loop.time()
        await self.process.start()
        self._watcher = asyncio.create_task(self._watch_process(), name="caddy-watcher")

    async def _watch_process(self) -> None:
        status = await self.process.wait()
        if self.process.stopping:
            return
        logger.error(
            "Caddy exited unexpectedly with status %d; restarting it. Its log "
            "ends with:\n%s",
            status,
            self.process.log_tail(),
        )
        self.writer.request_full()

    def _check_host(
        self, route: Route, hosts_in_use: dict[str, str] | None = None
    ) -> None:
        label, _, domain = route.host.partition(".")
        if domain != self.settings.base_domain:
            raise ValueError(
                f"Host {route.host!r} of tenant {route.tenant_id} is not one label "
                f"under the base domain {self.settings.base_domain!r}; use "
                f"'{label}.{self.settings.base_domain}'."
            )
        if route.host == self.settings.admin_host:
            raise ValueError(
                f"Host {route.host!r} is the admin host; tenant {route.tenant_id} "
                "needs another name."
            )
        if hosts_in_use is None:
            hosts_in_use = {
                other.host: other.tenant_id
                for other in self.writer.routes.values()
                if other.tenant_id != route.tenant_id
            }
        owner = hosts_in_use.get(route.host)
        if owner is not None and owner != route.tenant_id:
            raise ValueError(
                f"Host {route.host!r} already belongs to tenant {owner}; tenant "
                f"{route.tenant_id} needs another name."
            )

    def _check_hosts(self, routes: list[Route]) -> None:
        hosts_in_use: dict[str, str] = {}
        for route in routes:
            self._check_host(route, hosts_in_use)
            hosts_in_use[route.host] = route.tenant_id


def _connect_address(bind_address: str) -> str:
    if bind_address in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind_address == "::":
        return "::1"
    return bind_address


def _leaf_der(paths: CertificatePaths) -> bytes:
    certificate = x509.load_pem_x509_certificate(paths.certificate.read_bytes())
    return certificate.public_bytes(serialization.Encoding.DER)
