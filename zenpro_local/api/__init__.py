"""The admin HTTP API: one module per resource, built into one aiohttp app."""

from __future__ import annotations

from aiohttp import web

# Importing the resource modules and the dashboard declares their routes.
from zenpro_local import dashboard  # noqa: F401
from zenpro_local.api import (  # noqa: F401
    events,
    members,
    openapi,
    organizations,
    role_assignments,
    roles,
    sessions,
    system,
    teams,
    tenants,
    users,
)
from zenpro_local.api.auth import auth_middleware
from zenpro_local.api.context import CONTEXT, Context
from zenpro_local.api.errors import error_middleware
from zenpro_local.api.ratelimit import AUTH_LIMITER, AuthFailureLimiter
from zenpro_local.api.redaction import install as install_credential_filter
from zenpro_local.api.routing import add_routes
from zenpro_local.management_plane import routing as management_plane
from zenpro_local.management_plane import (  # noqa: F401
    console,
    device,
    entitlements,
    oauth,
    rbac,
    usage,
    users as mp_users,
    workspaces,
)


def create_app(context: Context) -> web.Application:
    """Return the admin API application for ``context``."""
    app = web.Application(
        middlewares=[error_middleware, auth_middleware],
        client_max_size=context.settings["max_body_size"],
    )
    app[CONTEXT] = context
    app[AUTH_LIMITER] = AuthFailureLimiter(
        context.settings["auth.max_failures"],
        context.settings["auth.failure_window"],
        trusted_proxies=context.settings["auth.trusted_proxies"],
    )
    install_credential_filter()
    add_routes(app)
    management_plane.add_routes(app)
    openapi.add_static(app)
    return app
