"""Schema versions and the forward migrations between them.

``PRAGMA user_version`` holds the schema version. At start-up every
migration newer than it runs in its own transaction, in order, together
with the version bump. Before the first migration touches an existing
database, a copy of it is written next to it (``state.db.bak-v<N>``), so a
failed upgrade loses nothing.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import sqlite_utils

logger = logging.getLogger(__name__)


class SchemaVersionError(RuntimeError):
    """The state database's schema is newer than this daemon supports."""

V1_INITIAL = """
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL DEFAULT '',
    full_name TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    is_superuser INTEGER NOT NULL DEFAULT 0,
    is_active INTEGER NOT NULL DEFAULT 1,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL
        REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    UNIQUE (organization_id, name)
);

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members(user_id);

CREATE TABLE roles (
    id TEXT PRIMARY KEY,
    organization_id TEXT
        REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('organization', 'tenant')),
    description TEXT NOT NULL DEFAULT '',
    permissions TEXT NOT NULL DEFAULT '[]',
    predefined INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE UNIQUE INDEX roles_name
    ON roles(coalesce(organization_id, ''), scope, name);

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    desired_state TEXT NOT NULL DEFAULT 'available',
    operation TEXT,
    zenml_version TEXT NOT NULL,
    runtime TEXT NOT NULL DEFAULT '',
    port INTEGER UNIQUE,
    auth_mode TEXT NOT NULL DEFAULT 'local',
    memory_limit INTEGER,
    cpu_limit REAL,
    secrets TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    deleted TEXT
);
CREATE UNIQUE INDEX tenants_live_name ON tenants(name)
    WHERE deleted IS NULL;
CREATE INDEX tenants_organization ON tenants(organization_id);

CREATE TABLE role_assignments (
    id TEXT PRIMARY KEY,
    role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    team_id TEXT REFERENCES teams(id) ON DELETE CASCADE,
    organization_id TEXT NOT NULL
        REFERENCES organizations(id) ON DELETE CASCADE,
    tenant_id TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    created_by TEXT,
    CHECK ((user_id IS NULL) != (team_id IS NULL))
);
CREATE UNIQUE INDEX role_assignments_unique ON role_assignments(
    role_id, coalesce(user_id, ''), coalesce(team_id, ''),
    organization_id, coalesce(tenant_id, '')
);
CREATE INDEX role_assignments_user ON role_assignments(user_id);
CREATE INDEX role_assignments_team ON role_assignments(team_id);
CREATE INDEX role_assignments_tenant ON role_assignments(tenant_id);
CREATE INDEX role_assignments_organization
    ON role_assignments(organization_id);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    expires TEXT,
    last_used TEXT,
    revoked TEXT
);
CREATE INDEX api_keys_user ON api_keys(user_id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    organization_id TEXT,
    tenant_id TEXT,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_tenant ON events(tenant_id, id);
CREATE INDEX events_organization ON events(organization_id, id);
"""

# Dashboard sign-ins. Only a SHA-256 hash of the session token is stored,
# so a copy of the database does not sign anyone in. A session opened with
# an API key ends when that key is revoked or deleted.
V2_SESSIONS = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    api_key_id TEXT REFERENCES api_keys(id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
"""

# The management plane that tenant servers in organization mode call.
# Tokens and client secrets are stored as SHA-256 hashes only. A share
# gives one user or team actions on one resource inside one tenant; a
# tenant login records which API key, if any, a user last signed in to
# the tenant with, so revoking that key ends the tenant session too.
V3_MANAGEMENT_PLANE = """
ALTER TABLE tenants ADD COLUMN client_secret_hash TEXT;

CREATE TABLE mp_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'tenant')),
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    tenant_id TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    api_key_id TEXT REFERENCES api_keys(id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE INDEX mp_tokens_user ON mp_tokens(user_id);

CREATE TABLE device_authorizations (
    id TEXT PRIMARY KEY,
    device_code_hash TEXT NOT NULL UNIQUE,
    user_code TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    tenant_id TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    expires TEXT NOT NULL
);

CREATE TABLE resource_shares (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    resource TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    team_id TEXT REFERENCES teams(id) ON DELETE CASCADE,
    actions TEXT NOT NULL DEFAULT '[]',
    shared_by TEXT,
    created TEXT NOT NULL,
    CHECK ((user_id IS NULL) != (team_id IS NULL))
);
CREATE UNIQUE INDEX resource_shares_unique ON resource_shares(
    tenant_id, resource, coalesce(user_id, ''), coalesce(team_id, '')
);

CREATE TABLE tenant_logins (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    api_key_id TEXT,
    updated TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
"""

# Each entry is one SQL script; entry N-1 takes the schema to version N.
MIGRATIONS: tuple[str, ...] = (V1_INITIAL, V2_SESSIONS, V3_MANAGEMENT_PLANE)

LATEST_VERSION = len(MIGRATIONS)


def current_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database, path: Path) -> None:
    """Bring the schema at ``path`` to :data:`LATEST_VERSION`.

    Raises:
        SchemaVersionError: the database is newer than this daemon supports.
    """
    version = current_version(db)
    if version > LATEST_VERSION:
        raise SchemaVersionError(
            f"state database {path} has schema version {version}, newer than "
            f"{LATEST_VERSION} that this daemon knows: upgrade zenpro-local"
        )
    if version == LATEST_VERSION:
        return

    if version > 0:
        _back_up(db, path.with_name(f"{path.name}.bak-v{version}"))

    for number in range(version + 1, LATEST_VERSION + 1):
        logger.info("Migrating state database %s to version %d", path, number)

        # executescript() commits before it runs, so the transaction is
        # part of the script itself.
        script = (
            f"BEGIN IMMEDIATE;\n{MIGRATIONS[number - 1]}\n"
            f"PRAGMA user_version = {number};\nCOMMIT;"
        )
        try:
            db.conn.executescript(script)
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise


def _back_up(db: sqlite_utils.Database, destination: Path) -> None:
    logger.info("Backing up state database to %s before migrating", destination)
    target = sqlite3.connect(destination)
    try:
        db.conn.backup(target)
    finally:
        target.close()
