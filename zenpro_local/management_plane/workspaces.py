"""Tenants as ZenML Pro workspaces: listing, lookup and status reports.

The ``zenml`` CLI finds the tenant it logs in to through these endpoints,
and a tenant server reports at start-up through ``PATCH /workspace_status``
(a failed report stops the server from starting).
"""

from __future__ import annotations

import logging

from aiohttp import web

from zenpro_local.api.access import can_see_tenant
from zenpro_local.api.context import context
from zenpro_local.api.errors import not_found
from zenpro_local.management_plane.routing import path_param, route
from zenpro_local.authz import load_principal
from zenpro_local.management_plane import PREFIX, bearer

logger = logging.getLogger(__name__)

TAG = "management plane"

# Tenant statuses as ZenML Pro's workspace statuses.
_STATUS = {
    "pending": "pending",
    "provisioning": "pending",
    "available": "available",
    "failed": "failed",
    "deactivating": "pending",
    "deactivated": "deactivated",
    "deleting": "pending",
    "deleted": "deleted",
}


def serialize(request: web.Request, row: dict, organization: dict) -> dict:
    """Return a tenant in the shape of a ZenML Pro workspace."""
    url = context(request).tenants.url(row["name"])
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "organization": {
            "id": organization["id"],
            "name": organization["name"],
            "description": organization["description"],
            "created": organization["created"],
            "updated": organization["updated"],
        },
        "desired_state": row["desired_state"],
        "state_reason": row["status_reason"],
        "status": _STATUS.get(row["status"], "pending"),
        "zenml_service": {
            "configuration": {"version": row["zenml_version"]},
            "status": {"server_url": url, "version": row["zenml_version"]},
        },
    }


def _visible_rows(request: web.Request) -> list[dict]:
    store = context(request).store
    holder = bearer.user_caller(request)
    principal = load_principal(store, holder.user)
    rows = store.query_all("SELECT * FROM tenants WHERE deleted IS NULL ORDER BY name")
    return [row for row in rows if can_see_tenant(principal, row)]


def _organization(request: web.Request, organization_id: str) -> dict:
    return context(request).store.query_one(
        "SELECT * FROM organizations WHERE id = ?", [organization_id]
    )


@route(
    "GET",
    PREFIX + "/workspaces",
    summary="List the tenants the caller may use, as ZenML Pro workspaces",
    tag=TAG,
    public=True,
    errors=(401,),
)
async def list_workspaces(request: web.Request) -> web.Response:
    rows = _visible_rows(request)
    url = request.query.get("url", "").rstrip("/")
    name = request.query.get("workspace_name", "")
    manager = context(request).tenants
    if url:
        rows = [row for row in rows if manager.url(row["name"]) == url]
    if name:
        rows = [row for row in rows if row["name"] == name]
    offset = int(request.query.get("offset", 0) or 0)
    limit = int(request.query.get("limit", 100) or 100)
    rows = rows[offset : offset + limit]
    items = [serialize(request, row, _organization(request, row["organization_id"]))
             for row in rows]
    return web.json_response(items)


@route(
    "GET",
    PREFIX + "/workspaces/{workspace_id}",
    summary="Get one tenant as a ZenML Pro workspace",
    tag=TAG,
    public=True,
    errors=(401, 404),
)
async def get_workspace(request: web.Request) -> web.Response:
    workspace_id = path_param(request, "workspace_id")
    for row in _visible_rows(request):
        if workspace_id in (row["id"], row["name"]):
            organization = _organization(request, row["organization_id"])
            return web.json_response(serialize(request, row, organization))
    raise not_found("workspace", workspace_id)


@route(
    "PATCH",
    PREFIX + "/workspace_status",
    summary="Record a tenant server's start-up report",
    tag=TAG,
    public=True,
    errors=(401, 403),
)
async def report_status(request: web.Request) -> web.Response:
    row = bearer.tenant_caller(request)
    version = request.headers.get("zenml-server-version", "")
    logger.info(
        "Tenant %s (%s) reported its server running, version %s",
        row["id"], row["name"], version or "unknown",
    )
    return web.json_response({"id": row["id"], "status": "available"})
