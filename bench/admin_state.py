"""A large daemon state for the admin API benchmarks, written straight to SQLite.

:func:`seed` fills a fresh data folder through the state layer (the
daemon's own schema, migrations and predefined roles, then sqlite-utils
inserts), not through HTTP, so a state of this size takes seconds to build:

- 20 organizations with 50 tenants each (1,000 tenants), all
  ``deactivated`` with ``desired_state = 'deactivated'``, so the
  reconciler of a daemon started on the folder starts no server;
- 2,000 users, 100 per organization, each with one API key;
- 5,000 role assignments: per organization 1 Admin, 4 Managers, 5
  Viewers and 90 Members (2,000 organization roles), and 3 tenant roles
  on 3 different tenants for 50 of the Members (3,000 tenant roles).

The benchmark callers are the first organization's Admin and one of its
Members with 3 tenant roles; their API keys are in the returned
:class:`SeedInfo`.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from zenpro_local import authz, bootstrap, credentials
from zenpro_local.secretbox import SecretBox
from zenpro_local.store import Store, new_id, utcnow

ORGANIZATIONS = 20
TENANTS_PER_ORGANIZATION = 50
USERS_PER_ORGANIZATION = 100
MEMBERS_WITH_TENANT_ROLES = 50
TENANT_ROLES_PER_MEMBER = 3

# Organization roles by position of the user inside its organization.
_ADMINS = 1
_MANAGERS = 4
_VIEWERS = 5
_TENANT_ROLE_IDS = ("tenant-admin", "tenant-developer", "tenant-viewer")


@dataclass(frozen=True)
class SeedInfo:
    """Facts about a seeded data folder that the benchmarks use."""

    data_dir: str
    admin_token: str
    organization_id: str
    organization_admin_token: str
    member_token: str
    member_tenant_ids: list[str]
    counts: dict[str, int]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, path: Path) -> "SeedInfo":
        return cls(**json.loads(path.read_text()))


def seed(data_dir: Path, random_seed: int = 1) -> SeedInfo:
    """Create the benchmark state in the new data folder ``data_dir``.

    Raises:
        FileExistsError: ``data_dir`` already contains a state database.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (data_dir / "state.db").exists():
        raise FileExistsError(f"{data_dir} already contains a state database")
    store = Store.open(data_dir / "state.db")
    try:
        authz.sync_predefined_roles(store)
        bootstrap.ensure_admin(store, data_dir)
        secretbox = SecretBox.load_or_create(data_dir / "secret.key")
        with store.transaction():
            info = _fill(store, secretbox, data_dir, random.Random(random_seed))
    finally:
        store.close()
    return info


def _fill(
    store: Store, secretbox: SecretBox, data_dir: Path, rng: random.Random
) -> SeedInfo:
    now = utcnow()
    db = store.db
    organizations = [_organization(index, now) for index in range(ORGANIZATIONS)]
    db["organizations"].insert_all(organizations)

    # One sealed secret serves every tenant: no server ever reads them here.
    sealed = secretbox.seal({"jwt_secret": "unused", "admin_password": "unused"})
    tenants_by_organization = {
        organization["id"]: [
            _tenant(organization, index, sealed, now)
            for index in range(TENANTS_PER_ORGANIZATION)
        ]
        for organization in organizations
    }
    for rows in tenants_by_organization.values():
        db["tenants"].insert_all(rows)

    users, keys, assignments = [], [], []
    tokens: dict[str, str] = {}
    member_tenants: dict[str, list[str]] = {}
    for org_index, organization in enumerate(organizations):
        tenants = tenants_by_organization[organization["id"]]
        for position in range(USERS_PER_ORGANIZATION):
            user = _user(org_index * USERS_PER_ORGANIZATION + position, now)
            users.append(user)
            key = credentials.generate_api_key()
            tokens[user["id"]] = key.key
            keys.append(_api_key(key, user["id"], now))
            assignments.append(
                _assignment(_organization_role(position), user, organization, None, now)
            )
            if _has_tenant_roles(position):
                chosen = rng.sample(tenants, TENANT_ROLES_PER_MEMBER)
                member_tenants[user["id"]] = [tenant["id"] for tenant in chosen]
                for tenant in chosen:
                    role_id = rng.choice(_TENANT_ROLE_IDS)
                    assignments.append(
                        _assignment(role_id, user, organization, tenant["id"], now)
                    )
    db["users"].insert_all(users)
    db["api_keys"].insert_all(keys)
    db["role_assignments"].insert_all(assignments)

    first = organizations[0]
    organization_admin = users[0]
    member = users[_ADMINS + _MANAGERS + _VIEWERS]
    admin_token = (data_dir / bootstrap.TOKEN_FILE).read_text().strip()
    return SeedInfo(
        data_dir=str(data_dir),
        admin_token=admin_token,
        organization_id=first["id"],
        organization_admin_token=tokens[organization_admin["id"]],
        member_token=tokens[member["id"]],
        member_tenant_ids=member_tenants[member["id"]],
        counts=_counts(store),
    )


def _organization_role(position: int) -> str:
    if position < _ADMINS:
        return "organization-admin"
    if position < _ADMINS + _MANAGERS:
        return "organization-manager"
    if position < _ADMINS + _MANAGERS + _VIEWERS:
        return "organization-viewer"
    return "organization-member"


def _has_tenant_roles(position: int) -> bool:
    first_member = _ADMINS + _MANAGERS + _VIEWERS
    return first_member <= position < first_member + MEMBERS_WITH_TENANT_ROLES


def _organization(index: int, now: str) -> dict:
    return {
        "id": new_id(),
        "name": f"org-{index:02d}",
        "description": f"benchmark organization {index}",
        "created": now,
        "updated": now,
    }


def _tenant(organization: dict, index: int, sealed: str, now: str) -> dict:
    return {
        "id": new_id(),
        "organization_id": organization["id"],
        "name": f"{organization['name']}-t{index:03d}",
        "description": f"benchmark tenant {index} of {organization['name']}",
        "status": "deactivated",
        "status_reason": "deactivated by request",
        "desired_state": "deactivated",
        "operation": None,
        "zenml_version": "0.98.0",
        "runtime": "process",
        "port": None,
        "auth_mode": "local",
        "secrets": sealed,
        "created": now,
        "updated": now,
        "deleted": None,
    }


def _user(index: int, now: str) -> dict:
    return {
        "id": new_id(),
        "username": f"user-{index:04d}",
        "email": f"user-{index:04d}@example.com",
        "full_name": f"Benchmark User {index}",
        "password_hash": None,
        "is_superuser": 0,
        "is_active": 1,
        "created": now,
        "updated": now,
    }


def _api_key(key: credentials.NewApiKey, user_id: str, now: str) -> dict:
    return {
        "id": key.id,
        "user_id": user_id,
        "key_hash": key.key_hash,
        "note": "benchmark",
        "created": now,
        "expires": None,
        "last_used": None,
        "revoked": None,
    }


def _assignment(
    role_id: str, user: dict, organization: dict, tenant_id: str | None, now: str
) -> dict:
    return {
        "id": new_id(),
        "role_id": role_id,
        "user_id": user["id"],
        "team_id": None,
        "organization_id": organization["id"],
        "tenant_id": tenant_id,
        "created": now,
        "created_by": None,
    }


def _counts(store: Store) -> dict[str, int]:
    tables = ("organizations", "tenants", "users", "role_assignments", "api_keys")
    return {
        table: store.query_one(f"SELECT count(*) AS n FROM {table}")["n"]
        for table in tables
    }
