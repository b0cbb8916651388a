"""The web dashboard: one HTML page and its script, served by the daemon.

The page is a shell; everything it shows comes from the admin API, called
by ``static/app.js`` with the session cookie and the CSRF token. Every
asset is served from this package, so the dashboard works offline.
"""

from __future__ import annotations

import functools
import html
import json
import logging
from pathlib import Path

from aiohttp import web

from zenpro_local import authz
from zenpro_local.api import models
from zenpro_local.api.errors import not_found
from zenpro_local.api.routing import route

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).parent
STATIC_DIR = PACKAGE_DIR / "static"
TEMPLATE = PACKAGE_DIR / "templates" / "index.html"
PREFIX = "/dashboard"
TAG = "dashboard"
# The files served from static/, by name: nothing else in the folder is.
STATIC_FILES = {
    "app.js": "text/javascript",
    "app.css": "text/css",
}

# Scripts and styles come only from this origin; no page may frame this one.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def page_config() -> dict:
    """Return the rules the page checks as the user types, from the API's own."""
    return {
        "tenantNamePattern": f"^{models._DNS_LABEL.pattern}$",
        "tenantNameRule": models.NAME_RULE,
        "daemonResources": list(authz.DAEMON_RESOURCES),
        "daemonActions": list(authz.DAEMON_ACTIONS),
        "tenantResources": list(authz.TENANT_SCOPE_RESOURCES),
        "zenmlResources": list(authz.ZENML_RESOURCES),
        "zenmlActions": list(authz.ZENML_ACTIONS),
    }


@functools.lru_cache(maxsize=1)
def render_index() -> str:
    config = html.escape(json.dumps(page_config()), quote=True)
    return TEMPLATE.read_text().replace("{{config}}", config)


@route(
    "GET",
    "/",
    summary="Redirect to the dashboard",
    tag=TAG,
    status=302,
    public=True,
    content_type="text/html",
)
async def to_dashboard(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"{PREFIX}/")


@route(
    "GET",
    f"{PREFIX}/",
    summary="The dashboard's page; its script reads everything from this API",
    tag=TAG,
    public=True,
    content_type="text/html",
)
async def index(request: web.Request) -> web.Response:
    return web.Response(
        text=render_index(),
        content_type="text/html",
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


@route(
    "GET",
    f"{PREFIX}/static/{{name}}",
    summary="A script or style sheet of the dashboard",
    tag=TAG,
    public=True,
    errors=(404,),
    content_type="text/plain",
)
async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        raise not_found("dashboard file", name)
    return web.Response(
        body=(STATIC_DIR / name).read_bytes(),
        content_type=content_type,
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )
