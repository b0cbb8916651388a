"""The ``zenpro-local`` command: the daemon, its settings, and admin commands.

Exit codes: 0 success, 1 the API answered an error, 2 invalid usage or
settings, 3 the daemon could not be reached, 4 a waited-for tenant failed
or timed out.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from zenpro_local import config
from zenpro_local.cli import commands
from zenpro_local.cli.client import ApiCallError, Client, ConnectionFailed

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class UsageError(Exception):
    """The command line names something unusable, e.g. an unreadable file."""


def _add_client_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """Add --url, --token-file and --json.

    They are accepted before and after the subcommand. Only the top-level
    parser has defaults, because a subparser's defaults would overwrite
    values given before the subcommand.
    """

    def default(value):
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--url",
        default=default(os.environ.get("ZENPRO_URL", "http://127.0.0.1:8740")),
        help="Admin API address (also ZENPRO_URL). Default: http://127.0.0.1:8740.",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=default(None),
        help="File holding an API key (also ZENPRO_TOKEN with the key itself). "
        "Default: admin-token in the data folder (ZENPRO_DATA_DIR or the "
        "default one).",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="Print JSON."
    )


def _client_options() -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    _add_client_options(shared, defaults=False)
    return shared


def _add(
    group: argparse._SubParsersAction,
    name: str,
    handler: commands.Command,
    help_text: str,
    shared: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=help_text, description=help_text, parents=[shared])
    parser.set_defaults(handler=handler)
    return parser


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", action="store_true", help="Show progress until the tenant is done."
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="With --wait: seconds to wait at most. Default: %(default)s.",
    )


def _organization_commands(top, shared) -> None:
    group = top.add_parser("org", help="Manage organizations.").add_subparsers(
        dest="action", required=True
    )
    parser = _add(group, "create", commands.org_create, "Create an organization.", shared)
    parser.add_argument("name")
    parser.add_argument("--description", default="")
    _add(group, "list", commands.org_list, "List organizations.", shared)
    for name, handler, text in (
        ("show", commands.org_show, "Show an organization."),
        ("events", commands.org_events, "Show an organization's events."),
        ("delete", commands.org_delete, "Delete an organization without tenants."),
    ):
        _add(group, name, handler, text, shared).add_argument("organization")


def _tenant_commands(top, shared) -> None:
    group = top.add_parser("tenant", help="Manage tenants.").add_subparsers(
        dest="action", required=True
    )
    parser = _add(group, "create", commands.tenant_create, "Create a tenant.", shared)
    parser.add_argument("organization", help="Organization name or id.")
    parser.add_argument("name", help="Tenant name: its host name label.")
    parser.add_argument("--description", default="")
    parser.add_argument("--zenml-version", help="ZenML server version.")
    _wait_options(parser)

    parser = _add(group, "list", commands.tenant_list, "List tenants.", shared)
    parser.add_argument("--organization", help="Only this organization's tenants.")

    for name, handler, text in (
        ("show", commands.tenant_show, "Show a tenant."),
        ("events", commands.tenant_events, "Show a tenant's events."),
        ("api-key", commands.tenant_api_key, "Create a ZenML API key on a tenant."),
    ):
        _add(group, name, handler, text, shared).add_argument("tenant")

    for name, handler, text in (
        ("deactivate", commands.tenant_deactivate, "Stop a tenant's server; keep data."),
        ("reactivate", commands.tenant_reactivate, "Start a deactivated tenant again."),
        ("restart", commands.tenant_restart, "Restart a tenant's server."),
    ):
        parser = _add(group, name, handler, text, shared)
        parser.add_argument("tenant")
        _wait_options(parser)

    parser = _add(group, "upgrade", commands.tenant_upgrade, "Upgrade a tenant's ZenML.", shared)
    parser.add_argument("tenant")
    parser.add_argument("zenml_version")
    _wait_options(parser)

    parser = _add(group, "delete", commands.tenant_delete, "Delete a tenant.", shared)
    parser.add_argument("tenant")
    parser.add_argument(
        "--purge", action="store_true", help="Also delete its data for good."
    )
    _wait_options(parser)


def _user_commands(top, shared) -> None:
    group = top.add_parser("user", help="Manage users.").add_subparsers(
        dest="action", required=True
    )
    parser = _add(group, "create", commands.user_create, "Create a user.", shared)
    parser.add_argument("username")
    parser.add_argument("--email", default="")
    parser.add_argument("--full-name", default="")
    parser.add_argument("--superuser", action="store_true")
    password = parser.add_mutually_exclusive_group()
    password.add_argument(
        "--password-stdin", action="store_true", help="Read a password from stdin."
    )
    password.add_argument(
        "--password-prompt", action="store_true", help="Prompt for a password."
    )
    _add(group, "list", commands.user_list, "List users.", shared)
    _add(group, "show", commands.user_show, "Show a user ('me': you).", shared).add_argument("user")
    _add(group, "delete", commands.user_delete, "Delete a user.", shared).add_argument("user")


def _member_commands(top, shared) -> None:
    group = top.add_parser("member", help="Manage organization members.").add_subparsers(
        dest="action", required=True
    )
    parser = _add(group, "add", commands.member_add, "Add a user to an organization.", shared)
    parser.add_argument("organization")
    parser.add_argument("user", help="Username.")
    parser.add_argument(
        "--role", default="organization-member", help="Organization role name or id."
    )
    _add(group, "list", commands.member_list, "List members.", shared).add_argument("organization")
    parser = _add(group, "remove", commands.member_remove, "Remove a member.", shared)
    parser.add_argument("organization")
    parser.add_argument("user")


def _team_commands(top, shared) -> None:
    group = top.add_parser("team", help="Manage teams.").add_subparsers(
        dest="action", required=True
    )
    parser = _add(group, "create", commands.team_create, "Create a team.", shared)
    parser.add_argument("organization")
    parser.add_argument("name")
    parser.add_argument("--description", default="")
    _add(group, "list", commands.team_list, "List teams.", shared).add_argument("organization")
    parser = _add(group, "delete", commands.team_delete, "Delete a team.", shared)
    parser.add_argument("organization")
    parser.add_argument("team")
    for name, handler, text in (
        ("add-member", commands.team_add_member, "Add a member to a team."),
        ("remove-member", commands.team_remove_member, "Remove a member from a team."),
    ):
        parser = _add(group, name, handler, text, shared)
        parser.add_argument("organization")
        parser.add_argument("team")
        parser.add_argument("user")


def _role_commands(top, shared) -> None:
    group = top.add_parser("role", help="Manage roles and role assignments.").add_subparsers(
        dest="action", required=True
    )
    _add(group, "list", commands.role_list, "List roles.", shared).add_argument("organization")
    parser = _add(group, "create", commands.role_create, "Create a custom role.", shared)
    parser.add_argument("organization")
    parser.add_argument("name")
    parser.add_argument("--scope", choices=("organization", "tenant"), required=True)
    parser.add_argument(
        "--permission",
        action="append",
        required=True,
        help="RESOURCE:ACTION, e.g. stack:create; repeat for more.",
    )
    parser.add_argument("--description", default="")
    parser = _add(group, "delete", commands.role_delete, "Delete a custom role.", shared)
    parser.add_argument("organization")
    parser.add_argument("role")

    parser = _add(group, "assign", commands.role_assign, "Give a role.", shared)
    parser.add_argument("organization")
    parser.add_argument("role", help="Role name or id.")
    holder = parser.add_mutually_exclusive_group(required=True)
    holder.add_argument("--user", help="Username.")
    holder.add_argument("--team", help="Team name.")
    parser.add_argument("--tenant", help="Tenant name, for a tenant role.")
    _add(group, "assignments", commands.role_assignments, "List role assignments.", shared).add_argument(
        "organization"
    )
    _add(group, "unassign", commands.role_unassign, "Take a role away.", shared).add_argument(
        "assignment_id"
    )


def _api_key_commands(top, shared) -> None:
    group = top.add_parser("api-key", help="Manage API keys.").add_subparsers(
        dest="action", required=True
    )
    parser = _add(group, "create", commands.api_key_create, "Create an API key.", shared)
    parser.add_argument("--note", default="")
    parser.add_argument("--expires-in-days", type=int)
    parser.add_argument("--user", default="me", help="User id; default: you.")
    parser = _add(group, "list", commands.api_key_list, "List API keys.", shared)
    parser.add_argument("--user", default="me", help="User id; default: you.")
    parser = _add(group, "revoke", commands.api_key_revoke, "Revoke an API key.", shared)
    parser.add_argument("key_id")
    parser.add_argument("--user", default="me", help="User id; default: you.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zenpro-local",
        description="ZenML Pro organizations and tenants on one machine.",
    )
    _add_client_options(parser, defaults=True)
    top = parser.add_subparsers(dest="command", required=True)

    serve = top.add_parser("serve", help="Run the daemon.")
    config.add_flags(serve)
    settings = top.add_parser("settings", help="Print every setting, its value and source.")
    config.add_flags(settings)
    settings.add_argument("--json", action="store_true", help="Print JSON.")

    image = top.add_parser("image", help="Tenant server images.").add_subparsers(
        dest="action", required=True
    )
    build = image.add_parser(
        "build", help="Build the ZenML server image offline (debootstrap, no registry)."
    )
    config.add_flags(build)
    build.add_argument("--zenml-version", help="Default: tenants.zenml_version.")
    build.add_argument("--tag", help="Default: tenants.image for that version.")
    build.add_argument("--force", action="store_true", help="Rebuild an existing tag.")

    shared = _client_options()
    _organization_commands(top, shared)
    _tenant_commands(top, shared)
    _user_commands(top, shared)
    _member_commands(top, shared)
    _team_commands(top, shared)
    _role_commands(top, shared)
    _api_key_commands(top, shared)
    return parser


def _token(args: argparse.Namespace) -> str | None:
    if os.environ.get("ZENPRO_TOKEN"):
        return os.environ["ZENPRO_TOKEN"]
    data_dir = os.environ.get("ZENPRO_DATA_DIR") or config.SETTINGS[0].default
    path = args.token_file or Path(data_dir) / "admin-token"
    try:
        return path.read_text().strip()
    except OSError as error:
        if args.token_file:
            raise UsageError(
                f"cannot read token file {path} ({error.strerror}): check --token-file"
            ) from None
        return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("serve", "settings", "image"):
        from zenpro_local.cli import local

        return local.run(args)

    try:
        client = Client(args.url, _token(args))
        return args.handler(client, args)
    except ApiCallError as error:
        print(f"error: {error.message} (HTTP {error.status} {error.code})", file=sys.stderr)
        return EXIT_API_ERROR
    except commands.NotFound as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_API_ERROR
    except ConnectionFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
