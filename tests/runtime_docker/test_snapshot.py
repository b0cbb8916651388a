"""Snapshot and restore of a tenant's SQLite database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from zenpro_local.runtime.base import StopTimeouts, TenantRuntimeError

from .zenml_api import (
    ADMIN_USERNAME,
    activate_server,
    create_user,
    login,
    user_names,
    wait_for_health,
)

pytestmark = pytest.mark.docker


def stored_user_names(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name FROM user").fetchall()
    return {name for (name,) in rows}


async def start_and_wait(runtime, spec) -> str:
    await runtime.start(spec)
    await wait_for_health(runtime.address(spec))
    return runtime.address(spec)


async def test_snapshot_restore_round_trip(runtime, make_spec, tmp_path):
    spec = make_spec()
    snapshot = tmp_path / "backups" / "tenant.db"
    await runtime.create(spec)
    address = await start_and_wait(runtime, spec)
    await activate_server(address)
    await runtime.stop(spec.tenant_id, StopTimeouts())

    await runtime.snapshot(spec.tenant_id, snapshot)

    assert ADMIN_USERNAME in stored_user_names(snapshot)
    assert "bob" not in stored_user_names(snapshot)

    # A change made after the snapshot ...
    await start_and_wait(runtime, spec)
    await create_user(address, await login(address), "bob")
    assert "bob" in await user_names(address, await login(address))
    await runtime.stop(spec.tenant_id, StopTimeouts())

    # ... is gone once the snapshot is restored.
    await runtime.restore(spec.tenant_id, snapshot)
    await start_and_wait(runtime, spec)
    names = await user_names(address, await login(address))
    assert ADMIN_USERNAME in names
    assert "bob" not in names


async def test_snapshot_after_kill_is_consistent(runtime, make_spec, tmp_path):
    spec = make_spec()
    await runtime.create(spec)
    address = await start_and_wait(runtime, spec)
    await activate_server(address)

    await runtime.stop(spec.tenant_id, StopTimeouts(graceful=0, terminate=0, kill=10))
    await runtime.snapshot(spec.tenant_id, tmp_path / "killed.db")

    with sqlite3.connect(tmp_path / "killed.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert ADMIN_USERNAME in stored_user_names(tmp_path / "killed.db")


async def test_snapshot_rejects_running_server(runtime, make_spec, tmp_path):
    spec = make_spec()
    await runtime.create(spec)
    await start_and_wait(runtime, spec)

    with pytest.raises(TenantRuntimeError, match="stop it first"):
        await runtime.snapshot(spec.tenant_id, tmp_path / "tenant.db")
    assert not (tmp_path / "tenant.db").exists()


async def test_snapshot_before_first_start_fails(runtime, make_spec, tmp_path):
    spec = make_spec()
    await runtime.create(spec)

    with pytest.raises(TenantRuntimeError, match="has no database yet"):
        await runtime.snapshot(spec.tenant_id, tmp_path / "tenant.db")


async def test_restore_rejects_invalid_file(runtime, make_spec, tmp_path):
    spec = make_spec()
    await runtime.create(spec)
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("this is not SQLite\n" * 100)
    empty = tmp_path / "empty.db"
    empty.touch()

    with pytest.raises(TenantRuntimeError, match="not a readable SQLite database"):
        await runtime.restore(spec.tenant_id, not_a_database)
    with pytest.raises(TenantRuntimeError, match="empty SQLite database"):
        await runtime.restore(spec.tenant_id, empty)
    with pytest.raises(TenantRuntimeError, match="not found"):
        await runtime.restore(spec.tenant_id, tmp_path / "absent.db")
