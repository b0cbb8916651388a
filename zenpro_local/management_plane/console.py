"""Pages that stand in for ZenML Pro's dashboard for organization tenants.

A tenant in organization mode serves no dashboard of its own: its ``/``
redirects to ``<console>/workspaces/<tenant name>``. That page shows the
tenant's status, how to connect the ``zenml`` CLI, and links to the
tenant's API documentation. ``<console>/api/auth/login`` is where the
tenant sends browsers that try to sign in; it explains the CLI login.
"""

from __future__ import annotations

import html
import urllib.parse

from aiohttp import web

from zenpro_local.api.context import context
from zenpro_local.management_plane.routing import path_param, route
from zenpro_local.management_plane import CONSOLE, urls
from zenpro_local.management_plane.pages import html_page

TAG = "management plane"


@route(
    "GET",
    CONSOLE + "/workspaces/{name}",
    summary="The landing page of a tenant in organization mode",
    tag=TAG,
    public=True,
    content_type="text/html",
)
async def tenant_page(request: web.Request) -> web.Response:
    name = path_param(request, "name")
    store = context(request).store
    row = store.query_one(
        "SELECT * FROM tenants WHERE name = ? AND deleted IS NULL", [name]
    )
    if row is None:
        body = (
            f"<p>No tenant named <b>{html.escape(name)}</b> exists on this "
            "daemon. Ask an administrator, or list tenants with "
            "<code>zenpro-local tenant list</code>.</p>"
        )
        return web.Response(
            text=html_page("Tenant not found", body), status=404, content_type="text/html"
        )
    return web.Response(
        text=html_page(f"Tenant {row['name']}", _tenant_body(request, row)),
        content_type="text/html",
    )


@route(
    "GET",
    CONSOLE + "/workspaces/{name}/{rest:.+}",
    summary="Send links into a tenant (runs, projects) to its landing page",
    tag=TAG,
    public=True,
    status=302,
)
async def tenant_deep_link(request: web.Request) -> web.Response:
    # The zenml client prints links to runs in ZenML Pro's dashboard, which
    # the daemon does not reproduce: its tenant page is the nearest one.
    name = urllib.parse.quote(path_param(request, "name"), safe="")
    target = f"{urls.console_url(context(request).settings)}/workspaces/{name}"
    raise web.HTTPFound(target)


def _tenant_body(request: web.Request, row: dict) -> str:
    url = html.escape(context(request).tenants.url(row["name"]))
    settings = context(request).settings
    ca_url = html.escape(urls.admin_url(settings) + "/api/v1/ca.pem")
    api_url = html.escape(urls.api_url(settings))
    reason = html.escape(row["status_reason"]) if row["status_reason"] else ""
    return f"""
<p>Status: <b>{html.escape(row['status'])}</b> {reason}</p>
<p>ZenML version {html.escape(row['zenml_version'])} at <code>{url}</code>.
Users and roles come from the organization in the daemon.</p>
<h2>Connect</h2>
<ol>
<li>Trust the daemon's CA: download <a href="{ca_url}">ca.pem</a> and set
<code>REQUESTS_CA_BUNDLE</code> to its path.</li>
<li>Set <code>ZENML_PRO_API_URL={api_url}</code>: the <code>zenml</code>
CLI sends API keys of the daemon there.</li>
<li>Create an API key for yourself in the daemon, then run
<code>zenml login {url} --api-key</code> and paste the key; or run
<code>zenml login {url}</code> and approve the login in the browser page
it opens.</li>
</ol>
<h2>API</h2>
<p><a href="{url}/docs">The tenant's REST API documentation</a></p>"""


@route(
    "GET",
    CONSOLE + "/api/auth/login",
    summary="Explain how to sign in to an organization tenant",
    tag=TAG,
    public=True,
    content_type="text/html",
)
async def login_page(request: web.Request) -> web.Response:
    body = (
        "<p>Tenants in organization mode have no browser sign-in. Use the "
        "<code>zenml</code> CLI: <code>zenml login &lt;tenant url&gt;</code> "
        "opens the daemon's device approval page, and "
        "<code>zenml login &lt;tenant url&gt; --api-key</code> takes an API "
        "key the daemon issued.</p>"
    )
    return web.Response(text=html_page("Sign in", body), content_type="text/html")
