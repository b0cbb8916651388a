"""Exceptions of the proxy package; :class:`ProxyError` is the one to catch."""

from __future__ import annotations


class ProxyError(Exception):
    """Caddy could not be started, configured or reached.

    ``str(error)`` names what failed and is fit to show a person. It never
    contains a private key or other secret.
    """


class CaddyAdminError(ProxyError):
    """Caddy's admin API rejected a request with a 4xx status.

    Attributes:
        status: The HTTP status of Caddy's response.
        method: The request method.
        path: The admin API path, such as ``/id/zenpro-tenant-1``.
        message: Caddy's own error message.
    """

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(
            f"Caddy rejected {method} {path} with status {status}: {message}"
        )
        self.status = status
        self.method = method
        self.path = path
        self.message = message


class ConfigChangedError(CaddyAdminError):
    """Caddy's configuration changed between a read and a conditional write."""


class ProbeError(ProxyError):
    """Caddy accepted a change but does not serve it on its HTTPS port."""
