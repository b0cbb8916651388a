"""State database migrations: idempotent, backed up, and strict about versions."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from zenpro_local.store import Store, migrations


def _schema(path: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()


def _version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def _set_version(path: Path, version: int) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {version}")


def _open_and_close(path: Path) -> None:
    Store.open(path).close()


def test_new_database_gets_latest_schema(tmp_path):
    path = tmp_path / "state.db"
    _open_and_close(path)
    assert _version(path) == migrations.LATEST_VERSION
    tables = {name for kind, name, _ in _schema(path) if kind == "table"}
    assert {"organizations", "tenants", "users", "roles", "events"} <= tables
    assert list(tmp_path.glob("*.bak-*")) == []


def test_reopening_latest_is_noop(tmp_path):
    path = tmp_path / "state.db"
    store = Store.open(path)
    store.db["organizations"].insert(
        {"id": "o1", "name": "acme", "created": "t", "updated": "t"}
    )
    store.close()
    schema = _schema(path)

    _open_and_close(path)
    _open_and_close(path)

    assert _schema(path) == schema
    assert _version(path) == migrations.LATEST_VERSION
    assert list(tmp_path.glob("*.bak-*")) == []
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT name FROM organizations").fetchall() == [("acme",)]


def test_newer_schema_rejected(tmp_path):
    path = tmp_path / "state.db"
    _open_and_close(path)
    newer = migrations.LATEST_VERSION + 1
    _set_version(path, newer)
    schema = _schema(path)

    with pytest.raises(migrations.SchemaVersionError) as caught:
        Store.open(path)

    message = str(caught.value)
    assert str(path) in message
    assert f"schema version {newer}" in message
    assert "upgrade zenpro-local" in message
    assert _version(path) == newer
    assert _schema(path) == schema
    assert list(tmp_path.glob("*.bak-*")) == []


def test_failed_migration_rolls_back(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    _open_and_close(path)
    schema = _schema(path)
    old_version = migrations.LATEST_VERSION
    # A test migration whose second statement fails.
    broken = "CREATE TABLE half_done (id TEXT);\nSELECT * FROM no_such_table;"
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS + (broken,))
    monkeypatch.setattr(migrations, "LATEST_VERSION", old_version + 1)

    with pytest.raises(sqlite3.OperationalError):
        Store.open(path)

    assert _version(path) == old_version
    assert _schema(path) == schema
    backup = tmp_path / f"state.db.bak-v{old_version}"
    assert backup.exists()
    assert _version(backup) == old_version
    assert _schema(backup) == schema


def test_serve_stops_on_newer_schema(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = data_dir / "state.db"
    _open_and_close(path)
    _set_version(path, migrations.LATEST_VERSION + 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    environ = {k: v for k, v in os.environ.items() if not k.startswith("ZENPRO_")}
    environ.update(
        ZENPRO_DATA_DIR=str(data_dir),
        ZENPRO_LISTEN=f"127.0.0.1:{port}",
        ZENPRO_RUNTIME="process",
    )
    result = subprocess.run(
        [sys.executable, "-m", "zenpro_local", "serve"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )
    assert result.returncode == 1
    assert "upgrade zenpro-local" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (data_dir / "admin-token").exists()
