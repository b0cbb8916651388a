"""The public URLs of the management plane, as tenants and clients see them.

Both are served by Caddy at ``https://admin.<base_domain>[:https_port]``.
The API URL must be the exact string clients use: the ``zenml`` client
stores its management-plane credentials under it, and finds it in a
tenant's ``/api/v1/info``.
"""

from __future__ import annotations

from zenpro_local.config import Settings
from zenpro_local.management_plane import CONSOLE, PREFIX

ADMIN_SUBDOMAIN = "admin"


def admin_host(settings: Settings) -> str:
    """Return the host name of the admin API and the management plane."""
    return f"{ADMIN_SUBDOMAIN}.{settings['base_domain']}"


def admin_url(settings: Settings) -> str:
    """Return the HTTPS origin of the admin API, through Caddy."""
    port = settings["https_port"]
    suffix = "" if port == 443 else f":{port}"
    return f"https://{admin_host(settings)}{suffix}"


def api_url(settings: Settings) -> str:
    """Return the URL tenant servers and clients call the management plane at."""
    return admin_url(settings) + PREFIX


def console_url(settings: Settings) -> str:
    """Return the URL that stands in for ZenML Pro's dashboard."""
    return admin_url(settings) + CONSOLE
