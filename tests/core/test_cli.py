"""The ``zenpro-local`` admin commands, run as a user would, against a daemon."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.core.helpers import create_user

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@dataclass
class Cli:
    """Runs ``python -m zenpro_local`` against one daemon."""

    url: str
    token_file: Path

    async def run(self, *args: str, token_file: Path | None = None) -> Result:
        # asyncio's subprocess keeps the event loop, and so the daemon in
        # it, serving while the command runs.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("ZENPRO_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "zenpro_local",
            *args,
            "--url",
            self.url,
            "--token-file",
            str(token_file or self.token_file),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environ,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        return Result(process.returncode, stdout.decode(), stderr.decode())

    async def ok(self, *args: str) -> Result:
        result = await self.run(*args)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        return result


@pytest.fixture
def cli(daemon):
    return Cli(url=daemon.url, token_file=daemon.data_dir / "admin-token")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_org_create_list_delete(cli):
    created = (await cli.ok("org", "create", "acme", "--json")).json()
    assert created["name"] == "acme"
    assert set(created) >= {"id", "created", "updated"}

    listed = (await cli.ok("org", "list", "--json")).json()
    assert [item["name"] for item in listed] == ["acme"]

    table = (await cli.ok("org", "list")).stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "DESCRIPTION", "CREATED"]
    assert created["id"] in table[1]
    assert "acme" in table[1]

    shown = (await cli.ok("org", "show", "acme", "--json")).json()
    assert shown["id"] == created["id"]

    events = (await cli.ok("org", "events", "acme", "--json")).json()
    assert [event["message"] for event in events] == ["organization 'acme' created"]

    deleted = await cli.ok("org", "delete", "acme")
    assert "acme" in deleted.stdout
    assert (await cli.ok("org", "list", "--json")).json() == []


async def test_tenant_create_list_show_delete(cli):
    await cli.ok("org", "create", "acme")
    created = (await cli.ok("tenant", "create", "acme", "prod", "--json")).json()
    assert created["name"] == "prod"
    assert created["status"] == "pending"
    assert created["url"].startswith("https://prod.")

    listed = (await cli.ok("tenant", "list", "--json")).json()
    assert [item["id"] for item in listed] == [created["id"]]
    in_org = (await cli.ok("tenant", "list", "--organization", "acme", "--json")).json()
    assert [item["name"] for item in in_org] == ["prod"]
    table = (await cli.ok("tenant", "list")).stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "NAME", "STATUS"]
    assert "pending" in table[1]

    shown = (await cli.ok("tenant", "show", "prod", "--json")).json()
    assert shown["id"] == created["id"]
    plain = (await cli.ok("tenant", "show", created["id"])).stdout
    assert "prod" in plain

    deleted = (await cli.ok("tenant", "delete", "prod", "--json")).json()
    assert deleted["id"] == created["id"]
    assert deleted["desired_state"] == "deleted"

    refused = await cli.run("org", "delete", "acme")
    assert refused.returncode == EXIT_API_ERROR
    assert "409" in refused.stderr


async def test_user_member_team_role(cli, daemon):
    await cli.ok("org", "create", "acme")
    await cli.ok("tenant", "create", "acme", "prod")
    bob = (await cli.ok("user", "create", "bob", "--json")).json()
    assert bob["username"] == "bob"
    assert bob["is_superuser"] is False

    added = (await cli.ok("member", "add", "acme", "bob", "--json")).json()
    assert added["user_id"] == bob["id"]
    assert added["role_id"] == "organization-member"
    members = (await cli.ok("member", "list", "acme", "--json")).json()
    assert sorted(item["user"]["username"] for item in members) == ["admin", "bob"]

    team = (await cli.ok("team", "create", "acme", "crew", "--json")).json()
    assert team["member_count"] == 0
    await cli.ok("team", "add-member", "acme", "crew", "bob")
    teams = (await cli.ok("team", "list", "acme", "--json")).json()
    assert [(item["name"], item["member_count"]) for item in teams] == [("crew", 1)]

    role = await cli.ok(
        "role",
        "create",
        "acme",
        "auditor",
        "--scope",
        "tenant",
        "--permission",
        "stack:read",
        "--permission",
        "pipeline:read",
        "--json",
    )
    assert role.json()["permissions"] == ["pipeline:read", "stack:read"]
    roles = (await cli.ok("role", "list", "acme", "--json")).json()
    assert "auditor" in [item["name"] for item in roles]

    assigned = await cli.ok(
        "role",
        "assign",
        "acme",
        "auditor",
        "--user",
        "bob",
        "--tenant",
        "prod",
        "--json",
    )
    assert assigned.json()["role_name"] == "auditor"
    assignments = (await cli.ok("role", "assignments", "acme", "--json")).json()
    assert assigned.json()["id"] in [item["id"] for item in assignments]

    bob_key = await daemon.call("POST", f"/api/v1/users/{bob['id']}/api_keys", json={})
    seen = await daemon.call("GET", "/api/v1/tenants", token=bob_key.body["key"])
    assert [item["name"] for item in seen.body["items"]] == ["prod"]

    await cli.ok("role", "unassign", assigned.json()["id"])
    await cli.ok("team", "remove-member", "acme", "crew", "bob")
    await cli.ok("member", "remove", "acme", "bob")
    members = (await cli.ok("member", "list", "acme", "--json")).json()
    assert [item["user"]["username"] for item in members] == ["admin"]
    await cli.ok("team", "delete", "acme", "crew")
    await cli.ok("role", "delete", "acme", "auditor")
    await cli.ok("user", "delete", "bob")
    users = (await cli.ok("user", "list", "--json")).json()
    assert [item["username"] for item in users] == ["admin"]


async def test_api_key_create_list_revoke(cli, tmp_path):
    created = (await cli.ok("api-key", "create", "--note", "ci", "--json")).json()
    assert created["key"].startswith("ZENPROKEY_")
    assert created["note"] == "ci"
    key_file = tmp_path / "ci-token"
    key_file.write_text(created["key"] + "\n")

    me = await cli.run("user", "show", "me", "--json", token_file=key_file)
    assert me.returncode == 0, me.stderr
    assert me.json()["username"] == "admin"

    listed = await cli.ok("api-key", "list", "--json")
    assert created["id"] in [item["id"] for item in listed.json()]
    assert created["key"] not in listed.stdout
    assert "key" not in listed.json()[0]

    plain = await cli.ok("api-key", "create")
    assert "shown once" in plain.stdout
    assert "ZENPROKEY_" in plain.stdout

    await cli.ok("api-key", "revoke", created["id"])
    refused = await cli.run("org", "list", token_file=key_file)
    assert refused.returncode == EXIT_API_ERROR
    assert "revoked" in refused.stderr
    assert created["key"] not in refused.stderr


async def test_api_error_exit_code(cli):
    await cli.ok("org", "create", "acme")
    cases = [
        (("org", "create", "acme"), "HTTP 409"),
        (("org", "create", "Not_A_Label"), "HTTP 422"),
        (("org", "show", "nope"), "'nope' not found"),
        (("tenant", "create", "nope", "prod"), "'nope' not found"),
        (("api-key", "create", "--expires-in-days", "0"), "HTTP 422"),
    ]
    for args, fragment in cases:
        result = await cli.run(*args)
        assert result.returncode == EXIT_API_ERROR, (args, result.stderr)
        assert result.stderr.startswith("error: "), result.stderr
        assert fragment in result.stderr
        assert "Traceback" not in result.stderr


async def test_unreachable_daemon_exit_code(cli):
    unreachable = Cli(url=f"http://127.0.0.1:{_free_port()}", token_file=cli.token_file)
    result = await unreachable.run("org", "list")
    assert result.returncode == EXIT_UNREACHABLE
    assert "cannot reach the daemon" in result.stderr
    assert "--url" in result.stderr


async def test_bad_usage_exit_code(cli, tmp_path):
    for args in (
        ("org", "create"),
        ("org", "frobnicate"),
        ("tenant", "list", "--bogus"),
        ("role", "create", "acme", "r", "--scope", "galaxy", "--permission", "a:b"),
        ("api-key", "create", "--expires-in-days", "soon"),
    ):
        result = await cli.run(*args)
        assert result.returncode == EXIT_USAGE, (args, result.stderr)
        assert "usage:" in result.stderr

    missing = await cli.run("org", "list", token_file=tmp_path / "absent")
    assert missing.returncode == EXIT_USAGE
    assert "--token-file" in missing.stderr


async def test_non_superuser_gets_api_error(cli, daemon, tmp_path):
    bob = await create_user(daemon, "bob")
    key_file = tmp_path / "bob-token"
    key_file.write_text(bob.token)
    result = await cli.run("user", "create", "carol", token_file=key_file)
    assert result.returncode == EXIT_API_ERROR
    assert "HTTP 403" in result.stderr
