"""allowed() with its pair sets decides exactly as a scan with matches() does.

The scan is the decision rule :func:`zenpro_local.authz.allowed` used before
it kept ``(resource, action)`` pairs per scope, written out again here.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from zenpro_local.authz import (
    DAEMON_ACTIONS,
    DAEMON_RESOURCES,
    ZENML_ACTIONS,
    ZENML_RESOURCES,
    Grant,
    Principal,
    allowed,
    matches,
)

ORGANIZATIONS = ("org-a", "org-b")
TENANTS = (None, "tenant-1", "tenant-2")

# Known names, wildcards and strings a custom role written straight into the
# database could hold: empty parts, extra colons, no colon, spaces, case.
NAMES = st.sampled_from(
    DAEMON_RESOURCES
    + ZENML_RESOURCES
    + DAEMON_ACTIONS
    + ZENML_ACTIONS
    + ("*", "", " ", "**", "Stack", "stack ", ":", "a:b", "*:*")
)
PERMISSIONS = st.one_of(
    st.builds(lambda resource, action: f"{resource}:{action}", NAMES, NAMES),
    NAMES,
    st.text(max_size=12),
)
GRANTS = st.builds(
    Grant,
    organization_id=st.sampled_from(ORGANIZATIONS),
    tenant_id=st.sampled_from(TENANTS),
    role_id=st.just("custom"),
    permissions=st.lists(PERMISSIONS, max_size=6).map(tuple),
)
PRINCIPALS = st.builds(
    Principal,
    user_id=st.just("user"),
    username=st.just("user"),
    is_superuser=st.booleans(),
    grants=st.lists(GRANTS, max_size=5),
)
QUERIES = st.tuples(
    st.one_of(NAMES, st.text(max_size=8)),
    st.one_of(NAMES, st.text(max_size=8)),
    st.sampled_from(ORGANIZATIONS + ("org-c",)),
    st.sampled_from(TENANTS + ("tenant-3",)),
)


def scan_allowed(principal, resource, action, organization_id, tenant_id):
    if principal.is_superuser:
        return True
    permissions = principal.permissions(organization_id, tenant_id)
    return any(matches(permission, resource, action) for permission in permissions)


@settings(max_examples=2000, deadline=None)
@given(principal=PRINCIPALS, queries=st.lists(QUERIES, min_size=1, max_size=20))
def test_allowed_equals_permission_scan(principal, queries):
    # Several queries on one principal also exercise its per-scope pair cache.
    for resource, action, organization_id, tenant_id in queries:
        expected = scan_allowed(
            principal, resource, action, organization_id, tenant_id
        )
        decided = allowed(principal, resource, action, organization_id, tenant_id)
        assert decided == expected, (resource, action, organization_id, tenant_id)


@settings(max_examples=500, deadline=None)
@given(principal=PRINCIPALS, query=QUERIES)
def test_allowed_after_cached_scope(principal, query):
    # A query on the organization scope first must not change a tenant's.
    resource, action, organization_id, tenant_id = query
    allowed(principal, resource, action, organization_id, None)
    allowed(principal, resource, action, organization_id, tenant_id)

    decided = allowed(principal, resource, action, organization_id, tenant_id)

    assert decided == scan_allowed(
        principal, resource, action, organization_id, tenant_id
    )
