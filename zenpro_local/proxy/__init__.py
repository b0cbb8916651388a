"""Caddy in front of every tenant: routes, certificates and the Caddy process.

The daemon uses :class:`Proxy` with :class:`ProxySettings` and :class:`Route`;
the other modules are its parts.
"""

from zenpro_local.proxy.caddy_config import PROBE_PATH, TLS_PERMISSION_PATH
from zenpro_local.proxy.errors import (
    CaddyAdminError,
    ConfigChangedError,
    ProbeError,
    ProxyError,
)
from zenpro_local.proxy.routes import Route, RouteState
from zenpro_local.proxy.service import Proxy
from zenpro_local.proxy.settings import ProxySettings, TLSMode

__all__ = [
    "PROBE_PATH",
    "TLS_PERMISSION_PATH",
    "CaddyAdminError",
    "ConfigChangedError",
    "ProbeError",
    "Proxy",
    "ProxyError",
    "ProxySettings",
    "Route",
    "RouteState",
    "TLSMode",
]
