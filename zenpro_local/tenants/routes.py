"""Pass route changes from the tenant lifecycle to the proxy.

:class:`RoutePublisher` publishes nothing, for a daemon that keeps tenant
records only; :class:`CaddyRoutes` keeps Caddy's routes in line with the
tenants' statuses.
"""

from __future__ import annotations

import logging

from zenpro_local.proxy import Proxy, Route

logger = logging.getLogger(__name__)

_WAITING = {
    "pending": "the tenant is being created",
    "provisioning": "the tenant's server is starting",
    "deactivating": "the tenant is being deactivated",
}


class RoutePublisher:
    """Receives route changes from the tenant lifecycle."""

    async def available(self, row: dict, upstream: str) -> None:
        """Route the tenant's host to ``upstream`` and wait until it is served."""

    async def unavailable(self, row: dict | None, reason: str) -> None:
        """Serve a 503 with ``reason`` on the tenant's host."""

    async def remove(self, row: dict) -> None:
        """Drop the tenant's route, so its host returns 404."""

    async def reconcile(self, rows: list[dict], busy: set[str]) -> None:
        """Put every route back as the tenant rows describe it.

        Tenants in ``busy`` have an operation under way, which owns their
        route: it keeps what that operation last set.
        """

    async def renew_certificate(self) -> None:
        """Renew the certificate the routes are served with, when due."""


class CaddyRoutes(RoutePublisher):
    """Publishes tenant routes through the daemon's :class:`Proxy`."""

    def __init__(self, proxy: Proxy, base_domain: str):
        self.proxy = proxy
        self.base_domain = base_domain

    def host(self, row: dict) -> str:
        return f"{row['name']}.{self.base_domain}"

    def route_for(self, row: dict) -> Route | None:
        """Return the route a tenant row calls for; None when it has none."""
        if row["deleted"] or row["desired_state"] == "deleted":
            return None
        if row["status"] == "available" and row["port"]:
            return Route.available(row["id"], self.host(row), f"127.0.0.1:{row['port']}")
        reason = row["status_reason"] or _WAITING.get(row["status"], row["status"])
        return Route.unavailable(row["id"], self.host(row), reason)

    async def available(self, row: dict, upstream: str) -> None:
        await self.proxy.set_route(Route.available(row["id"], self.host(row), upstream))
        await self.proxy.wait_synced()

    async def unavailable(self, row: dict | None, reason: str) -> None:
        if row is None:
            return
        route = Route.unavailable(row["id"], self.host(row), reason or row["status"])
        await self.proxy.set_route(route)

    async def remove(self, row: dict) -> None:
        await self.proxy.remove_route(row["id"])

    async def reconcile(self, rows: list[dict], busy: set[str]) -> None:
        current = self.proxy.routes
        routes = []
        for row in rows:
            if row["id"] in busy:
                route = current.get(row["id"])
            else:
                route = self.route_for(row)
            if route is not None:
                routes.append(route)
        await self.proxy.reconcile(routes)

    async def renew_certificate(self) -> None:
        if await self.proxy.renew_certificate():
            logger.info("Renewed the certificate of the tenant hosts")
