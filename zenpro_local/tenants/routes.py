"""How the tenant lifecycle tells the proxy about a tenant's route.

The base class publishes nothing, for a daemon started without Caddy; the
Caddy-backed publisher overrides each method.
"""

from __future__ import annotations


class RoutePublisher:
    """Receives route changes from the tenant lifecycle."""

    async def available(self, row: dict, upstream: str) -> None:
        """Route the tenant's host to ``upstream`` and wait until it is served."""

    def unavailable(self, row: dict | None, reason: str) -> None:
        """Answer the tenant's host with a 503 that gives ``reason``."""

    def remove(self, row: dict) -> None:
        """Drop the tenant's route, so its host answers 404."""
