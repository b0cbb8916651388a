"""Roles and permissions, and the one function that decides every access.

A permission is ``"<resource type>:<action>"``; either part may be ``*``.
Roles are named sets of permissions at organization or tenant scope. A role
assignment gives a role to a user or a team, on an organization (it then
applies to every tenant in it) or on one tenant. A user's rights are the
union of its own assignments and those of its teams. Any role on an
organization or tenant also lets its holder read that organization or
tenant, so a custom role need not list that permission. Superusers may do
everything.

The admin API and the management plane both ask :func:`allowed`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable

from zenpro_local.store import Store

# Resource types of the daemon itself.
DAEMON_RESOURCES = (
    "organization",
    "tenant",
    "member",
    "team",
    "role",
    "role_assignment",
)
DAEMON_ACTIONS = ("create", "read", "update", "delete")

# Resource types and actions that ZenML servers ask about.
ZENML_RESOURCES = (
    "artifact",
    "artifact_version",
    "code_repository",
    "deployment",
    "flavor",
    "model",
    "model_version",
    "pipeline",
    "pipeline_build",
    "pipeline_deployment",
    "pipeline_run",
    "project",
    "run_metadata",
    "run_template",
    "schedule",
    "secret",
    "service",
    "service_account",
    "service_connector",
    "stack",
    "stack_component",
    "tag",
    "trigger",
    "webhook",
)
ZENML_ACTIONS = (
    "create",
    "read",
    "update",
    "delete",
    "read_secret_value",
    "prune",
    "client",
    "promote",
    "backup_restore",
    "share",
)

# Resource types a tenant-scope role may mention.
TENANT_SCOPE_RESOURCES = ("tenant", "role_assignment") + ZENML_RESOURCES


@dataclass(frozen=True)
class PredefinedRole:
    id: str
    name: str
    scope: str
    description: str
    permissions: tuple[str, ...]


_ZENML_ALL = tuple(f"{resource}:*" for resource in ZENML_RESOURCES)
_ZENML_READ = tuple(f"{resource}:read" for resource in ZENML_RESOURCES)

PREDEFINED_ROLES: tuple[PredefinedRole, ...] = (
    PredefinedRole(
        "organization-admin",
        "Admin",
        "organization",
        "Everything in the organization and all its tenants.",
        ("*:*",),
    ),
    PredefinedRole(
        "organization-manager",
        "Manager",
        "organization",
        "Manages tenants, teams, members and roles; cannot delete the "
        "organization or change its admins.",
        (
            "organization:read",
            "organization:update",
            "tenant:*",
            "member:*",
            "team:*",
            "role:*",
            "role_assignment:*",
        )
        + _ZENML_ALL,
    ),
    PredefinedRole(
        "organization-viewer",
        "Viewer",
        "organization",
        "Reads the organization and sees all its tenants.",
        ("*:read",),
    ),
    PredefinedRole(
        "organization-member",
        "Member",
        "organization",
        "Belongs to the organization; sees only tenants it has a role on.",
        ("organization:read", "member:read", "team:read", "role:read"),
    ),
    PredefinedRole(
        "tenant-admin",
        "Admin",
        "tenant",
        "Everything inside the tenant, including who has access to it.",
        ("tenant:read", "tenant:update", "role_assignment:*") + _ZENML_ALL,
    ),
    PredefinedRole(
        "tenant-developer",
        "Developer",
        "tenant",
        "Creates, runs and changes pipelines, stacks, models and other "
        "resources inside the tenant.",
        ("tenant:read",) + _ZENML_ALL,
    ),
    PredefinedRole(
        "tenant-viewer",
        "Viewer",
        "tenant",
        "Reads the tenant's resources.",
        ("tenant:read",) + _ZENML_READ,
    ),
)

PREDEFINED_BY_ID = {role.id: role for role in PREDEFINED_ROLES}
# Every organization member holds at least this role.
MEMBER_ROLE_ID = "organization-member"


def matches(permission: str, resource: str, action: str) -> bool:
    """Return whether ``permission`` covers ``action`` on ``resource``."""
    granted_resource, _, granted_action = permission.partition(":")
    if granted_resource not in ("*", resource):
        return False
    return granted_action in ("*", action)


def covers(held: Iterable[str], wanted: Iterable[str]) -> bool:
    """Return whether the ``held`` permissions include every ``wanted`` one.

    A wanted wildcard expands to each known resource type or action it
    matches: ``*:read`` is covered by read permissions on every resource
    type, and ``organization:*`` needs every action on organizations.
    """
    held = tuple(held)
    for permission in wanted:
        for resource, action in _expand(permission):
            if not any(matches(have, resource, action) for have in held):
                return False
    return True


def _actions_of(resource: str) -> tuple[str, ...]:
    return ZENML_ACTIONS if resource in ZENML_RESOURCES else DAEMON_ACTIONS


def _expand(permission: str) -> list[tuple[str, str]]:
    """Return the concrete ``(resource, action)`` pairs a permission names.

    A pattern that names no known pair is returned as it is, so that only a
    held permission at least as wide covers it.
    """
    resource, _, action = permission.partition(":")
    known = DAEMON_RESOURCES + ZENML_RESOURCES
    pairs: list[tuple[str, str]] = []
    for name in known if resource == "*" else (resource,):
        if name not in known:
            continue
        actions = _actions_of(name)
        if action == "*":
            pairs.extend((name, each) for each in actions)
        elif action in actions:
            pairs.append((name, action))
    return pairs or [(resource, action)]


@dataclass(frozen=True)
class Grant:
    """The permissions one role assignment gives, and where they apply."""

    organization_id: str
    tenant_id: str | None
    role_id: str
    permissions: tuple[str, ...]


@dataclass
class Principal:
    """An authenticated user and every grant it holds, loaded once."""

    user_id: str
    username: str
    is_superuser: bool
    grants: list[Grant] = field(default_factory=list)
    api_key_id: str | None = None
    # (organization id, tenant id) -> the (resource, action) pairs held
    # there. A principal is rebuilt whenever the state changes, so this
    # never outlives its grants.
    _pairs_by_scope: dict[tuple[str, str | None], frozenset[tuple[str, str]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def organization_ids(self) -> set[str]:
        return {grant.organization_id for grant in self.grants}

    def permissions(
        self, organization_id: str, tenant_id: str | None = None
    ) -> list[str]:
        """Return the permissions that apply on the organization or tenant."""
        found: list[str] = []
        for grant in self.grants:
            if grant.organization_id != organization_id:
                continue
            if grant.tenant_id is None or grant.tenant_id == tenant_id:
                found.extend(grant.permissions)
        return found

    def held(
        self, organization_id: str, tenant_id: str | None = None
    ) -> frozenset[tuple[str, str]]:
        """Return :meth:`permissions` as a set of ``(resource, action)`` pairs."""
        key = (organization_id, tenant_id)
        pairs = self._pairs_by_scope.get(key)
        if pairs is None:
            pairs = frozenset(
                (resource, action)
                for permission in self.permissions(organization_id, tenant_id)
                for resource, _, action in [permission.partition(":")]
            )
            self._pairs_by_scope[key] = pairs
        return pairs

    def tenant_ids_with_grants(self, organization_id: str) -> set[str]:
        return {
            grant.tenant_id
            for grant in self.grants
            if grant.organization_id == organization_id and grant.tenant_id
        }


def allowed(
    principal: Principal,
    resource: str,
    action: str,
    organization_id: str,
    tenant_id: str | None = None,
) -> bool:
    """Decide whether ``principal`` may do ``action`` on ``resource``.

    Args:
        principal: the user asking, with its grants.
        resource: a resource type, e.g. ``"tenant"`` or ``"stack"``.
        action: e.g. ``"read"`` or ``"create"``.
        organization_id: the organization the resource belongs to.
        tenant_id: the tenant, for resources inside one; organization-wide
            grants apply to every tenant of the organization.

    Returns:
        True when a grant of the principal's covers the action.
    """
    if principal.is_superuser:
        return True
    # Look up the four pairs that match() accepts instead of scanning every
    # permission, because each tenant request checks up to 1,000 resources.
    held = principal.held(organization_id, tenant_id)
    return (
        (resource, action) in held
        or (resource, "*") in held
        or ("*", action) in held
        or ("*", "*") in held
    )


def allowed_on_resource(
    principal: Principal,
    resource: str,
    action: str,
    organization_id: str,
    tenant_id: str,
    shared_actions: Iterable[str] = (),
) -> bool:
    """Decide an action on one ZenML resource inside a tenant.

    The principal's roles decide first; ``shared_actions`` are the actions
    that shares of this one resource give the principal or its teams.
    Creators keep their rights on what they created without asking: the
    tenant server checks ownership itself before it asks the daemon.
    """
    if allowed(principal, resource, action, organization_id, tenant_id):
        return True
    return action in shared_actions


def may_grant(
    principal: Principal,
    role_permissions: Iterable[str],
    organization_id: str,
    tenant_id: str | None,
) -> bool:
    """Return whether ``principal`` holds everything a role would give.

    Nobody may hand out, or take away, more than it holds itself at the
    place where the role applies.
    """
    if principal.is_superuser:
        return True
    held = principal.permissions(organization_id, tenant_id)
    return covers(held, role_permissions)


def load_principal(store: Store, user: dict, api_key_id: str | None = None) -> Principal:
    """Build the :class:`Principal` for a user row, with all its grants."""
    rows = store.query_all(
        """
        SELECT a.organization_id, a.tenant_id, a.role_id, r.permissions
        FROM role_assignments a JOIN roles r ON r.id = a.role_id
        WHERE a.user_id = :user
           OR a.team_id IN (SELECT team_id FROM team_members WHERE user_id = :user)
        """,
        {"user": user["id"]},
    )
    grants = [
        Grant(
            organization_id=row["organization_id"],
            tenant_id=row["tenant_id"],
            role_id=row["role_id"],
            permissions=_with_implied_read(
                tuple(json.loads(row["permissions"])), row["tenant_id"]
            ),
        )
        for row in rows
    ]
    return Principal(
        user_id=user["id"],
        username=user["username"],
        is_superuser=bool(user["is_superuser"]),
        grants=grants,
        api_key_id=api_key_id,
    )


def _with_implied_read(
    permissions: tuple[str, ...], tenant_id: str | None
) -> tuple[str, ...]:
    """Add read access to the organization or tenant a grant applies to."""
    implied = "tenant:read" if tenant_id else "organization:read"
    if implied in permissions:
        return permissions
    return permissions + (implied,)


def validate_permissions(scope: str, permissions: Iterable[str]) -> str | None:
    """Return why ``permissions`` are invalid for a role of ``scope``, or None."""
    resources = DAEMON_RESOURCES + ZENML_RESOURCES
    if scope == "tenant":
        resources = TENANT_SCOPE_RESOURCES
    for permission in permissions:
        resource, sep, action = permission.partition(":")
        if not sep:
            return f"{permission!r} is not of the form RESOURCE:ACTION"
        if resource != "*" and resource not in resources:
            return (
                f"unknown resource type {resource!r} for a {scope} role; "
                f"known: {', '.join(resources)}"
            )
        actions = ZENML_ACTIONS if resource in ZENML_RESOURCES else DAEMON_ACTIONS
        if resource == "*":
            actions = ZENML_ACTIONS
        if action != "*" and action not in actions:
            return (
                f"unknown action {action!r} for {resource!r}; known: "
                f"{', '.join(actions)}"
            )
    return None


def sync_predefined_roles(store: Store) -> None:
    """Write the predefined roles into the roles table, as this code has them.

    Idempotent: a row that already matches is left alone, so ``created``
    and ``updated`` change only when this code changes a role.
    """
    from zenpro_local.store import utcnow

    now = utcnow()
    with store.transaction() as db:
        for role in PREDEFINED_ROLES:
            wanted = {
                "organization_id": None,
                "name": role.name,
                "scope": role.scope,
                "description": role.description,
                "permissions": json.dumps(list(role.permissions)),
                "predefined": 1,
            }
            current = store.query_one("SELECT * FROM roles WHERE id = ?", [role.id])
            if current is None:
                db["roles"].insert(
                    {"id": role.id, **wanted, "created": now, "updated": now}
                )
            elif any(current[key] != value for key, value in wanted.items()):
                db["roles"].update(role.id, {**wanted, "updated": now})
