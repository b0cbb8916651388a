"""Look up the object a request names and check the caller may act on it.

An object the caller cannot see answers 404 exactly like one that does not
exist, so names and ids of other organizations and tenants do not leak. An
object the caller can see but not change answers 403.
"""

from __future__ import annotations

from aiohttp import web

from zenpro_local.api.auth import principal
from zenpro_local.api.context import context
from zenpro_local.api.errors import forbidden, not_found
from zenpro_local.authz import Principal, allowed


def can_see_organization(caller: Principal, organization_id: str) -> bool:
    return caller.is_superuser or organization_id in caller.organization_ids()


def can_see_tenant(caller: Principal, tenant: dict) -> bool:
    return allowed(caller, "tenant", "read", tenant["organization_id"], tenant["id"])


def organization(
    request: web.Request,
    organization_id: str,
    resource: str = "organization",
    action: str = "read",
) -> dict:
    """Return the organization row if the caller may ``action`` ``resource`` in it.

    Raises:
        ApiError: 404 if it does not exist or the caller is not in it, 403
            if the caller is in it but lacks the permission.
    """
    caller = principal(request)
    row = context(request).store.query_one(
        "SELECT * FROM organizations WHERE id = ?", [organization_id]
    )
    if row is None or not can_see_organization(caller, organization_id):
        raise not_found("organization", organization_id)
    if not allowed(caller, resource, action, organization_id):
        raise forbidden(f"{action} {resource} in organization {row['name']!r}")
    return row


def tenant(
    request: web.Request,
    tenant_id: str,
    resource: str = "tenant",
    action: str = "read",
    include_deleted: bool = True,
) -> dict:
    """Return the tenant row if the caller may ``action`` ``resource`` on it.

    Raises:
        ApiError: 404 if it does not exist or the caller cannot see it, 403
            if the caller can see it but lacks the permission.
    """
    caller = principal(request)
    row = context(request).store.query_one(
        "SELECT * FROM tenants WHERE id = ?", [tenant_id]
    )
    if row is None or (row["deleted"] and not include_deleted):
        raise not_found("tenant", tenant_id)
    if not can_see_tenant(caller, row):
        raise not_found("tenant", tenant_id)
    if not allowed(caller, resource, action, row["organization_id"], tenant_id):
        raise forbidden(f"{action} {resource} on tenant {row['name']!r}")
    return row
