"""Admin subcommands: each turns its arguments into admin API calls."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any, Callable

from zenpro_local.cli.client import ApiCallError, Client
from zenpro_local.cli.output import print_object, print_table

EXIT_FAILED_TENANT = 4

Command = Callable[[Client, argparse.Namespace], int]


class NotFound(Exception):
    """A name given on the command line matches nothing the caller can see."""


def _items(client: Client, path: str) -> list[dict]:
    separator = "&" if "?" in path else "?"
    items: list[dict] = []
    offset = 0
    while True:
        page = client.get(f"{path}{separator}offset={offset}&limit=1000")
        items.extend(page["items"])
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return items


def _resolve(client: Client, path: str, key: str, value: str, kind: str) -> dict:
    for item in _items(client, path):
        if item["id"] == value or item.get(key) == value:
            return item
    raise NotFound(f"{kind} {value!r} not found (give its name or id)")


def organization(client: Client, value: str) -> dict:
    return _resolve(client, "/api/v1/organizations", "name", value, "organization")


def tenant(client: Client, value: str) -> dict:
    return _resolve(
        client, "/api/v1/tenants?include_deleted=true", "name", value, "tenant"
    )


def user(client: Client, value: str) -> dict:
    return _resolve(client, "/api/v1/users", "username", value, "user")


def team(client: Client, organization_id: str, value: str) -> dict:
    path = f"/api/v1/organizations/{organization_id}/teams"
    return _resolve(client, path, "name", value, "team")


def role(client: Client, organization_id: str, value: str, scope: str | None) -> dict:
    path = f"/api/v1/organizations/{organization_id}/roles"
    matches = [
        item
        for item in _items(client, path)
        if item["id"] == value
        or (item["name"] == value and (scope is None or item["scope"] == scope))
    ]
    if not matches:
        raise NotFound(f"role {value!r} not found (give its name or id)")
    if len(matches) > 1:
        raise NotFound(
            f"role name {value!r} exists at organization and tenant scope: give "
            "its id, e.g. organization-viewer or tenant-viewer"
        )
    return matches[0]


TENANT_COLUMNS = ("id", "name", "status", "zenml_version", "url", "status_reason")


# Organizations


def org_create(client: Client, args: argparse.Namespace) -> int:
    body = {"name": args.name, "description": args.description}
    print_object(client.post("/api/v1/organizations", body), args.json)
    return 0


def org_list(client: Client, args: argparse.Namespace) -> int:
    items = _items(client, "/api/v1/organizations")
    print_table(items, ("id", "name", "description", "created"), args.json)
    return 0


def org_show(client: Client, args: argparse.Namespace) -> int:
    print_object(organization(client, args.organization), args.json)
    return 0


def org_events(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    items = _items(client, f"/api/v1/organizations/{found['id']}/events")
    print_table(items, ("id", "created", "action", "message"), args.json)
    return 0


def org_delete(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    client.delete(f"/api/v1/organizations/{found['id']}")
    if not args.json:
        print(f"Deleted organization {found['name']}")
    return 0


# Tenants


def tenant_create(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    body: dict[str, Any] = {"name": args.name, "description": args.description}
    if args.zenml_version:
        body["zenml_version"] = args.zenml_version
    created = client.post(f"/api/v1/organizations/{found['id']}/tenants", body)
    if args.wait:
        return _wait(client, created, ("available",), args)
    print_object(created, args.json)
    return 0


def tenant_list(client: Client, args: argparse.Namespace) -> int:
    path = "/api/v1/tenants"
    if args.organization:
        path += f"?organization_id={organization(client, args.organization)['id']}"
    print_table(_items(client, path), TENANT_COLUMNS, args.json)
    return 0


def tenant_show(client: Client, args: argparse.Namespace) -> int:
    print_object(tenant(client, args.tenant), args.json)
    return 0


def _tenant_change(body: dict, goal: tuple[str, ...]) -> Command:
    def change(client: Client, args: argparse.Namespace) -> int:
        found = tenant(client, args.tenant)
        if "zenml_version" in body:
            body["zenml_version"] = args.zenml_version
        seen = _event_count(client, found["id"])
        updated = client.patch(f"/api/v1/tenants/{found['id']}", body)
        if args.wait:
            return _wait(client, updated, goal, args, seen)
        print_object(updated, args.json)
        return 0

    return change


tenant_deactivate = _tenant_change({"desired_state": "deactivated"}, ("deactivated",))
tenant_reactivate = _tenant_change({"desired_state": "available"}, ("available",))
tenant_upgrade = _tenant_change({"zenml_version": None}, ("available",))


def tenant_restart(client: Client, args: argparse.Namespace) -> int:
    found = tenant(client, args.tenant)
    seen = _event_count(client, found["id"])
    updated = client.post(f"/api/v1/tenants/{found['id']}/restart")
    if args.wait:
        return _wait(client, updated, ("available",), args, seen)
    print_object(updated, args.json)
    return 0


def tenant_delete(client: Client, args: argparse.Namespace) -> int:
    found = tenant(client, args.tenant)
    query = "?purge=true" if args.purge else ""
    seen = _event_count(client, found["id"])
    deleted = client.delete(f"/api/v1/tenants/{found['id']}{query}")
    if args.wait:
        return _wait(client, deleted, ("deleted",), args, seen)
    print_object(deleted, args.json)
    return 0


def tenant_events(client: Client, args: argparse.Namespace) -> int:
    found = tenant(client, args.tenant)
    items = _items(client, f"/api/v1/tenants/{found['id']}/events")
    print_table(items, ("id", "created", "action", "message"), args.json)
    return 0


def tenant_api_key(client: Client, args: argparse.Namespace) -> int:
    found = tenant(client, args.tenant)
    created = client.post(f"/api/v1/tenants/{found['id']}/api_keys")
    if args.json:
        print_object(created, True)
    else:
        print(f"ZenML API key for {created['url']} (shown once):")
        print(created["key"])
        command = f"zenml login {created['url']} --api-key"
        if created.get("pro_api_url"):
            command += f" --pro-api-url {created['pro_api_url']}"
        print("\nConnect with (the CA from GET /api/v1/ca.pem in ca.pem):")
        print("  export REQUESTS_CA_BUNDLE=$PWD/ca.pem")
        print(f"  {command}")
    return 0


def _event_count(client: Client, tenant_id: str) -> int:
    return client.get(f"/api/v1/tenants/{tenant_id}/events?limit=1")["total"]


def _wait(
    client: Client,
    row: dict,
    goal: tuple[str, ...],
    args: argparse.Namespace,
    seen_events: int = 0,
) -> int:
    """Print the tenant's events until its status reaches ``goal`` or failed.

    The first ``seen_events`` events, from before the request, are skipped.
    """
    last_event = 0
    if seen_events:
        older = client.get(
            f"/api/v1/tenants/{row['id']}/events?offset={seen_events - 1}&limit=1"
        )["items"]
        last_event = older[0]["id"] if older else 0
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            events = client.get(
                f"/api/v1/tenants/{row['id']}/events?after={last_event}&limit=1000"
            )["items"]
            current = client.get(f"/api/v1/tenants/{row['id']}")
        except ApiCallError as error:
            if error.status == 404 and "deleted" in goal:
                print(f"Tenant {row['name']} purged")
                return 0
            raise
        for event in events:
            last_event = event["id"]
            if not args.json:
                print(f"{event['created'][11:19]}  {event['action']:<12} {event['message']}")
        if current["status"] in goal and not current["operation"]:
            print_object(current, args.json)
            return 0
        if current["status"] == "failed" and not current["operation"]:
            print_object(current, args.json)
            return EXIT_FAILED_TENANT
        if time.monotonic() > deadline:
            print(
                f"error: tenant {row['name']} is still {current['status']} after "
                f"{args.timeout:.0f} s (raise --timeout)",
                file=sys.stderr,
            )
            return EXIT_FAILED_TENANT
        time.sleep(1)


# Users


def user_create(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "username": args.username,
        "email": args.email,
        "full_name": args.full_name,
        "is_superuser": args.superuser,
    }
    if args.password_stdin:
        body["password"] = sys.stdin.readline().rstrip("\n")
    elif args.password_prompt:
        body["password"] = getpass.getpass("Password: ")
    print_object(client.post("/api/v1/users", body), args.json)
    return 0


def user_list(client: Client, args: argparse.Namespace) -> int:
    columns = ("id", "username", "email", "is_superuser", "is_active")
    print_table(_items(client, "/api/v1/users"), columns, args.json)
    return 0


def user_show(client: Client, args: argparse.Namespace) -> int:
    if args.user == "me":
        print_object(client.get("/api/v1/users/me"), args.json)
    else:
        print_object(user(client, args.user), args.json)
    return 0


def user_delete(client: Client, args: argparse.Namespace) -> int:
    found = user(client, args.user)
    client.delete(f"/api/v1/users/{found['id']}")
    if not args.json:
        print(f"Deleted user {found['username']}")
    return 0


# Members and teams


def member_add(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    chosen = role(client, found["id"], args.role, "organization")
    body = {"username": args.user, "role_id": chosen["id"]}
    print_object(client.post(f"/api/v1/organizations/{found['id']}/members", body), args.json)
    return 0


def member_list(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    items = _items(client, f"/api/v1/organizations/{found['id']}/members")
    rows = [
        {
            "username": item["user"]["username"],
            "user_id": item["user"]["id"],
            "roles": ", ".join(
                role_ref["name"] + (f"@{role_ref['tenant_id'][:8]}" if role_ref.get("tenant_id") else "")
                for role_ref in item["roles"]
            ),
        }
        for item in items
    ]
    print_table(rows if not args.json else items, ("username", "user_id", "roles"), args.json)
    return 0


def member_remove(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    member = user(client, args.user)
    client.delete(f"/api/v1/organizations/{found['id']}/members/{member['id']}")
    if not args.json:
        print(f"Removed {member['username']} from {found['name']}")
    return 0


def team_create(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    body = {"name": args.name, "description": args.description}
    print_object(client.post(f"/api/v1/organizations/{found['id']}/teams", body), args.json)
    return 0


def team_list(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    items = _items(client, f"/api/v1/organizations/{found['id']}/teams")
    print_table(items, ("id", "name", "member_count", "description"), args.json)
    return 0


def team_delete(client: Client, args: argparse.Namespace) -> int:
    found = team(client, organization(client, args.organization)["id"], args.team)
    client.delete(f"/api/v1/teams/{found['id']}")
    if not args.json:
        print(f"Deleted team {found['name']}")
    return 0


def team_add_member(client: Client, args: argparse.Namespace) -> int:
    found = team(client, organization(client, args.organization)["id"], args.team)
    member = user(client, args.user)
    client.post(f"/api/v1/teams/{found['id']}/members", {"user_id": member["id"]})
    if not args.json:
        print(f"Added {member['username']} to team {found['name']}")
    return 0


def team_remove_member(client: Client, args: argparse.Namespace) -> int:
    found = team(client, organization(client, args.organization)["id"], args.team)
    member = user(client, args.user)
    client.delete(f"/api/v1/teams/{found['id']}/members/{member['id']}")
    if not args.json:
        print(f"Removed {member['username']} from team {found['name']}")
    return 0


# Roles


def role_list(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    items = _items(client, f"/api/v1/organizations/{found['id']}/roles")
    print_table(items, ("id", "name", "scope", "predefined", "description"), args.json)
    return 0


def role_create(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    body = {
        "name": args.name,
        "scope": args.scope,
        "description": args.description,
        "permissions": args.permission,
    }
    print_object(client.post(f"/api/v1/organizations/{found['id']}/roles", body), args.json)
    return 0


def role_delete(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    chosen = role(client, found["id"], args.role, None)
    client.delete(f"/api/v1/roles/{chosen['id']}")
    if not args.json:
        print(f"Deleted role {chosen['name']}")
    return 0


def role_assign(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    scope = "tenant" if args.tenant else "organization"
    chosen = role(client, found["id"], args.role, scope)
    body: dict[str, Any] = {"role_id": chosen["id"]}
    if args.user:
        body["user_id"] = user(client, args.user)["id"]
    else:
        body["team_id"] = team(client, found["id"], args.team)["id"]
    if args.tenant:
        body["tenant_id"] = tenant(client, args.tenant)["id"]
    path = f"/api/v1/organizations/{found['id']}/role_assignments"
    print_object(client.post(path, body), args.json)
    return 0


def role_assignments(client: Client, args: argparse.Namespace) -> int:
    found = organization(client, args.organization)
    items = _items(client, f"/api/v1/organizations/{found['id']}/role_assignments")
    columns = ("id", "role_name", "user_id", "team_id", "tenant_id")
    print_table(items, columns, args.json)
    return 0


def role_unassign(client: Client, args: argparse.Namespace) -> int:
    client.delete(f"/api/v1/role_assignments/{args.assignment_id}")
    if not args.json:
        print(f"Removed role assignment {args.assignment_id}")
    return 0


# API keys


def api_key_create(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"note": args.note}
    if args.expires_in_days is not None:
        body["expires_in_days"] = args.expires_in_days
    created = client.post(f"/api/v1/users/{args.user}/api_keys", body)
    if args.json:
        print_object(created, True)
    else:
        print(f"API key {created['id']} (shown once, store it now):")
        print(created["key"])
    return 0


def api_key_list(client: Client, args: argparse.Namespace) -> int:
    items = _items(client, f"/api/v1/users/{args.user}/api_keys")
    columns = ("id", "note", "created", "expires", "last_used", "revoked")
    print_table(items, columns, args.json)
    return 0


def api_key_revoke(client: Client, args: argparse.Namespace) -> int:
    client.delete(f"/api/v1/users/{args.user}/api_keys/{args.key_id}")
    if not args.json:
        print(f"Revoked API key {args.key_id}")
    return 0
