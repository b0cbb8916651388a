"""What request handlers reach through ``request.app[CONTEXT]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from zenpro_local.config import Settings
from zenpro_local.store import Store

if TYPE_CHECKING:
    from zenpro_local.proxy import Proxy
    from zenpro_local.tenants.manager import TenantManager


@dataclass
class Context:
    """The daemon's parts that handlers use; built by the daemon at start."""

    settings: Settings
    store: Store
    tenants: "TenantManager | None" = None
    proxy: "Proxy | None" = None
    ca_pem: bytes | None = None
    extras: dict[str, Any] | None = None


CONTEXT = web.AppKey("context", Context)


def context(request: web.Request) -> Context:
    return request.app[CONTEXT]
