"""The event log: what happened to an organization and to each of its tenants.

Rows are appended by :meth:`zenpro_local.store.Store.record_event` and never
changed. Clients poll with ``after=<last id seen>`` to get only new events.
"""

from __future__ import annotations

from aiohttp import web

from zenpro_local.api import access, models
from zenpro_local.api.context import context
from zenpro_local.api.requests import page, pagination, query_int
from zenpro_local.api.routing import PAGINATION, QueryParam, route

# Largest value of the "after" parameter. SQLite's integers are 64-bit.
MAX_EVENT_ID = 2**62

_QUERY = PAGINATION + (
    QueryParam(
        "after",
        "integer",
        "Only events with a greater id.",
        default=0,
        minimum=0,
        maximum=MAX_EVENT_ID,
    ),
)


@route(
    "GET",
    "/api/v1/organizations/{organization_id}/events",
    summary="List an organization's events, its tenants' included, newest last",
    tag="organizations",
    response=models.Page[models.Event],
    query=_QUERY,
    errors=(401, 403, 404, 422),
)
async def list_organization_events(request: web.Request) -> web.Response:
    # The log names who got which role, so reading it takes the right to
    # read the organization's role assignments.
    row = access.organization(
        request, request.match_info["organization_id"], "role_assignment", "read"
    )
    return _events_page(request, "organization_id", row["id"])


@route(
    "GET",
    "/api/v1/tenants/{tenant_id}/events",
    summary="List a tenant's events, newest last",
    tag="tenants",
    response=models.Page[models.Event],
    query=_QUERY,
    errors=(401, 404, 422),
)
async def list_tenant_events(request: web.Request) -> web.Response:
    row = access.tenant(request, request.match_info["tenant_id"])
    return _events_page(request, "tenant_id", row["id"])


def _events_page(request: web.Request, column: str, value: str) -> web.Response:
    """Return the page of events whose ``column`` is ``value``, oldest first."""
    offset, limit = pagination(request)
    after = query_int(request, "after", 0, 0, MAX_EVENT_ID)
    store = context(request).store

    total = store.query_one(
        f"SELECT count(*) AS n FROM events WHERE {column} = ? AND id > ?",
        [value, after],
    )["n"]
    rows = store.query_all(
        f"SELECT * FROM events WHERE {column} = ? AND id > ? ORDER BY id "
        "LIMIT ? OFFSET ?",
        [value, after, limit, offset],
    )
    return page(rows, total, offset, limit)
