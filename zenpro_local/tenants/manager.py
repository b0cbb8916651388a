"""The tenant lifecycle: one status field, operations as tasks, events.

A tenant's ``status`` is owned by this class alone. Requests ask for an
operation (create, deactivate, reactivate, restart, upgrade, delete,
purge); the manager records it, returns at once, and runs the work as an
asyncio task, at most one per tenant. Each step is an event on the tenant.

Statuses::

    pending -> provisioning -> available
                            \\-> failed          (status_reason says why)
    available -> deactivating -> deactivated   (server removed, data kept)
    any -> deleting -> deleted                  (data kept unless purged)

``desired_state`` records what the operator asked for (available,
deactivated or deleted), so after a crash the reconciler can finish what
was under way.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp

from zenpro_local.api.errors import ApiError, conflict
from zenpro_local.authz import Principal, allowed
from zenpro_local.config import Settings
from zenpro_local.management_plane import urls
from zenpro_local.runtime import (
    InstanceState,
    StopTimeouts,
    TenantRuntime,
    TenantRuntimeError,
    TenantSpec,
)
from zenpro_local.proxy import ProxyError
from zenpro_local.proxy.caddy_admin import is_loopback
from zenpro_local.secretbox import SecretBox
from zenpro_local.store import Store, new_id, utcnow
from zenpro_local.tenants import ports, zenml_api
from zenpro_local.tenants.routes import RoutePublisher

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = ("pending", "provisioning", "deactivating", "deleting")
ADMIN_USERNAME = "zenpro-admin"
# Host name labels the daemon serves itself (admin.<base_domain>).
RESERVED_NAMES = ("admin",)

AUTH_MODES = ("local", "organization")
# The project a new organization tenant starts with, named as ZenML names
# the one it creates in local mode.
DEFAULT_PROJECT = "default"
# OAuth audience that tenant servers send with their client credentials.
OAUTH2_AUDIENCE = "zenpro-local"
# Path of the daemon's CA certificate inside a tenant container.
CONTAINER_CA_FILE = "/etc/zenpro-local/ca.pem"

# Operations a stop may interrupt: "stop is allowed while a start is pending".
_INTERRUPTIBLE = ("provision", "reactivate")


class OperationFailed(Exception):
    """A step failed; ``str(error)`` becomes the tenant's status_reason."""


@dataclass
class RunningOperation:
    """An operation on a tenant; ``task`` is None while it waits to start."""

    name: str
    task: asyncio.Task | None


class TenantManager:
    """Owns every tenant's status and runs operations on tenant servers."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        secretbox: SecretBox,
        runtime: TenantRuntime | None,
        routes: RoutePublisher | None = None,
    ):
        self.settings = settings
        self.store = store
        self.secretbox = secretbox
        self.runtime = runtime
        self.routes = routes or RoutePublisher()
        self._running: dict[str, RunningOperation] = {}
        self._session: aiohttp.ClientSession | None = None
        self._closing = False

    # Start and stop

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        """Cancel running operations; tenant servers keep running."""
        self._closing = True
        tasks = [
            operation.task
            for operation in self._running.values()
            if operation.task is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "TenantManager.start() was not awaited"
        return self._session

    # Reading

    def url(self, name: str) -> str:
        port = self.settings["https_port"]
        suffix = "" if port == 443 else f":{port}"
        return f"https://{name}.{self.settings['base_domain']}{suffix}"

    def serialize(self, row: dict) -> dict:
        return {
            "id": row["id"],
            "organization_id": row["organization_id"],
            "name": row["name"],
            "description": row["description"],
            "status": row["status"],
            "status_reason": row["status_reason"],
            "desired_state": row["desired_state"],
            "operation": row["operation"],
            "zenml_version": row["zenml_version"],
            "auth_mode": row["auth_mode"],
            "url": self.url(row["name"]),
            "pro_api_url": (
                urls.api_url(self.settings)
                if row["auth_mode"] == "organization"
                else None
            ),
            "runtime": row["runtime"],
            "created": row["created"],
            "updated": row["updated"],
            "deleted": row["deleted"],
        }

    def get(self, tenant_id: str) -> dict | None:
        return self.store.query_one("SELECT * FROM tenants WHERE id = ?", [tenant_id])

    def list_visible(
        self,
        caller: Principal,
        organization_id: str | None,
        include_deleted: bool,
        limit: int,
        offset: int,
    ) -> tuple[int, list[dict]]:
        """Return ``(total, rows)`` of the tenants ``caller`` may read."""
        conditions, params = self._visibility(caller)
        if organization_id:
            conditions.append("organization_id = ?")
            params.append(organization_id)
        if not include_deleted:
            conditions.append("deleted IS NULL")
        where = " AND ".join(conditions) or "1"
        total = self.store.query_one(
            f"SELECT count(*) AS n FROM tenants WHERE {where}", params
        )["n"]
        rows = self.store.query_all(
            f"SELECT * FROM tenants WHERE {where} ORDER BY name LIMIT ? OFFSET ?",
            params + [limit, offset],
        )
        return total, rows

    def _visibility(self, caller: Principal) -> tuple[list[str], list]:
        if caller.is_superuser:
            return [], []
        wide = [
            organization_id
            for organization_id in caller.organization_ids()
            if allowed(caller, "tenant", "read", organization_id)
        ]
        narrow = [
            grant.tenant_id
            for grant in caller.grants
            if grant.tenant_id
            and any(_reads_tenant(permission) for permission in grant.permissions)
        ]
        wide_marks = ", ".join("?" * len(wide)) or "NULL"
        narrow_marks = ", ".join("?" * len(narrow)) or "NULL"
        condition = (
            f"(organization_id IN ({wide_marks}) OR id IN ({narrow_marks}))"
        )
        return [condition], [*wide, *narrow]

    # Requests from the API

    def create(
        self,
        *,
        organization_id: str,
        name: str,
        description: str,
        zenml_version: str | None,
        actor_id: str,
        auth_mode: str | None = None,
    ) -> dict:
        """Record a new tenant as ``pending`` and start provisioning it.

        ``auth_mode`` is ``local`` (the server keeps its own users) or
        ``organization`` (the daemon is its management plane); None means
        the ``tenants.auth_mode`` setting.

        Raises:
            ApiError: 409 when the name is taken by a tenant that is not
                deleted.
        """
        if name in RESERVED_NAMES:
            raise ApiError(
                422,
                f"invalid name: {name!r} is reserved for the daemon's own host; "
                "choose another name",
                field="name",
            )
        auth_mode = auth_mode or self.settings["tenants.auth_mode"]
        self._check_management_plane_reachable(auth_mode)
        now = utcnow()
        tenant_secrets = _new_tenant_secrets()
        row = {
            "id": new_id(),
            "organization_id": organization_id,
            "name": name,
            "description": description,
            "status": "pending",
            "status_reason": "",
            "desired_state": "available",
            "operation": "provision" if self.runtime else None,
            "zenml_version": zenml_version or self.settings["tenants.zenml_version"],
            "runtime": self.runtime.kind if self.runtime else "",
            "port": None,
            "auth_mode": auth_mode,
            "secrets": self.secretbox.seal(tenant_secrets),
            "client_secret_hash": _hash_secret(tenant_secrets["client_secret"]),
            "created": now,
            "updated": now,
            "deleted": None,
        }
        try:
            with self.store.transaction() as db:
                db["tenants"].insert(row)
                self._event(row, "created", f"tenant {name!r} requested", actor_id)
        except sqlite3.IntegrityError:
            raise conflict(
                f"a tenant named {name!r} already exists: tenant names are "
                "host names, unique across the daemon; choose another name",
                field="name",
            ) from None
        logger.info("Tenant %s (%s) created", row["id"], name)
        if self.runtime is not None:
            self._launch(row["id"], "provision", self._provision)
        return row

    async def update(
        self,
        row: dict,
        *,
        description: str | None,
        desired_state: str | None,
        zenml_version: str | None,
        actor_id: str,
    ) -> dict:
        """Apply a PATCH: description now; state and version as operations.

        Raises:
            ApiError: 409 when another operation runs on the tenant, 422 for
                a change that makes no sense in the tenant's status.
        """
        if desired_state and zenml_version:
            raise ApiError(
                422,
                "change desired_state and zenml_version in two requests",
                field="zenml_version",
            )
        operation = None
        if desired_state and desired_state != row["desired_state"]:
            operation = "deactivate" if desired_state == "deactivated" else "reactivate"
        if zenml_version and zenml_version != row["zenml_version"]:
            if row["status"] != "available":
                raise conflict(
                    f"tenant {row['name']!r} is {row['status']}: upgrade needs "
                    "an available tenant"
                )
            operation = "upgrade"
        # Check for a conflict before changing anything, so a rejected
        # request leaves the tenant as it was.
        if operation:
            self._ensure_free(row, operation)

        if description is not None:
            self._write(row["id"], description=description)
            self._event(row, "updated", "description changed", actor_id)

        if operation == "deactivate":
            await self._begin(row, "deactivate", actor_id)
            self._write(row["id"], desired_state="deactivated", status="deactivating")
            self._launch(row["id"], "deactivate", self._deactivate)
        elif operation == "reactivate":
            await self._begin(row, "reactivate", actor_id)
            self._write(row["id"], desired_state="available", status="provisioning")
            self._launch(row["id"], "reactivate", self._provision)
        elif operation == "upgrade":
            await self._begin(row, "upgrade", actor_id)
            self._launch(
                row["id"],
                "upgrade",
                lambda tenant_id: self._upgrade(tenant_id, zenml_version),
            )
        return self.get(row["id"])

    async def restart(self, row: dict, *, actor_id: str) -> dict:
        """Restart the tenant's server (stop, then start).

        Raises:
            ApiError: 409 when busy or not available.
        """
        if row["desired_state"] != "available":
            raise conflict(f"tenant {row['name']!r} is deactivated: reactivate it instead")
        await self._begin(row, "restart", actor_id)
        self._write(row["id"], status="provisioning")
        self._launch(row["id"], "restart", self._restart)
        return self.get(row["id"])

    async def delete(self, row: dict, *, purge: bool, actor_id: str) -> dict:
        """Delete the tenant's server and route; with ``purge``, its data too.

        Raises:
            ApiError: 409 when another operation runs on the tenant.
        """
        running = self.busy(row["id"])
        already = row["desired_state"] == "deleted" or running in ("delete", "purge")
        # Deleting again is a no-op; a purge may still follow a plain delete.
        if already and (not purge or running == "purge"):
            return row
        await self._begin(row, "purge" if purge else "delete", actor_id, stop=True)
        self._write(row["id"], desired_state="deleted", status="deleting")
        self._launch(row["id"], "delete", lambda tenant_id: self._delete(tenant_id, purge))
        return self.get(row["id"])

    async def create_zenml_api_key(self, row: dict, caller: Principal) -> dict:
        """Create an API key that logs ``caller`` in to the tenant's server.

        For a tenant in organization mode, that is a daemon API key of the
        caller's (``ZENPROKEY_``), which the server checks with the daemon.
        For a local tenant, it is a key on the server itself, of a service
        account named after the user and created on first use. Either is
        returned once; the daemon stores only a hash of its own keys.
        """
        if row["auth_mode"] == "organization":
            return self._create_organization_key(row, caller)
        if row["status"] != "available":
            raise conflict(
                f"tenant {row['name']!r} is {row['status']}: wait until it is available"
            )
        values = self.secretbox.open(row["secrets"])
        base_url = self._base_url(row)
        try:
            token = await zenml_api.login(
                self.session, base_url, ADMIN_USERNAME, values["admin_password"]
            )
            key = await zenml_api.create_service_account_key(
                self.session,
                base_url,
                token,
                account_name=f"zenpro-{caller.username}",
                key_name=f"zenpro-{utcnow()}",
            )
        except (zenml_api.ZenMLApiError, aiohttp.ClientError, TimeoutError) as error:
            logger.error("Creating a ZenML API key on tenant %s failed: %s", row["id"], error)
            raise ApiError(503, f"the tenant's server did not create the key: {error}")
        self._event(
            row, "api_key", f"ZenML API key created for {caller.username}", caller.user_id
        )
        return {
            "tenant_id": row["id"],
            "url": self.url(row["name"]),
            "key": key,
            "api_key_id": None,
            "service_account": f"zenpro-{caller.username}",
            "pro_api_url": None,
        }

    def _create_organization_key(self, row: dict, caller: Principal) -> dict:
        # The admin API owns API keys; importing it at the top would be
        # circular, because it imports this module.
        from zenpro_local.api.users import insert_api_key

        note = f"zenml login to tenant {row['name']}"
        with self.store.transaction():
            created = insert_api_key(self.store, caller.user_id, note, None)
            self._event(
                row, "api_key", f"API key created for {caller.username}", caller.user_id
            )
        return {
            "tenant_id": row["id"],
            "url": self.url(row["name"]),
            "key": created["key"],
            "api_key_id": created["id"],
            "service_account": None,
            "pro_api_url": urls.api_url(self.settings),
        }

    # Operations

    def busy(self, tenant_id: str) -> str | None:
        """Return the name of the operation running on the tenant, if any."""
        running = self._running.get(tenant_id)
        return running.name if running else None

    def _ensure_free(self, row: dict, name: str, stop: bool = False) -> None:
        """Raise 409 unless operation ``name`` may start on the tenant now."""
        running = self._running.get(row["id"])
        interruptible = stop or name == "deactivate"
        if running is not None and not (interruptible and running.name in _INTERRUPTIBLE):
            raise conflict(
                f"tenant {row['name']!r} is busy with {running.name}: wait "
                "until it finishes (see its events)"
            )

    async def _begin(
        self, row: dict, name: str, actor_id: str | None, stop: bool = False
    ) -> None:
        """Claim the tenant for ``name``, interrupting a start if allowed.

        Raises:
            ApiError: 409 when another operation runs and may not be cut.
        """
        self._ensure_free(row, name, stop)
        running = self._running.get(row["id"])
        if running is not None:
            # Claim the tenant before awaiting, so a request arriving in the
            # meantime sees this operation and not the one being cancelled.
            self._running[row["id"]] = RunningOperation(name, None)
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
            self._event(row, "interrupted", f"{running.name} interrupted by {name}", actor_id)
        self._event(row, name, f"{name} requested", actor_id)

    def _launch(
        self, tenant_id: str, name: str, work: Callable[[str], Awaitable[None]]
    ) -> None:
        if self._closing or self.runtime is None:
            return
        self._write(tenant_id, operation=name)
        task = asyncio.create_task(self._run(tenant_id, name, work), name=f"{name}:{tenant_id}")
        self._running[tenant_id] = RunningOperation(name, task)

    async def _run(
        self, tenant_id: str, name: str, work: Callable[[str], Awaitable[None]]
    ) -> None:
        try:
            await work(tenant_id)
        except asyncio.CancelledError:
            logger.info("Operation %s on tenant %s cancelled", name, tenant_id)
            raise
        except (OperationFailed, TenantRuntimeError, ProxyError) as error:
            await self._fail(tenant_id, name, str(error))
        except Exception as error:
            logger.exception("Operation %s on tenant %s crashed", name, tenant_id)
            await self._fail(tenant_id, name, f"internal error: {error!r}")
        finally:
            current = self._running.get(tenant_id)
            if current is not None and current.task is asyncio.current_task():
                del self._running[tenant_id]
                if self.get(tenant_id) is not None:
                    self._write(tenant_id, operation=None)

    async def mark_failed(self, tenant_id: str, reason: str) -> None:
        """Give up on a tenant: status ``failed`` with ``reason``."""
        await self._fail(tenant_id, "health check", reason)

    async def _fail(self, tenant_id: str, operation: str, reason: str) -> None:
        row = self.get(tenant_id)
        if row is None:
            return
        logger.error("Tenant %s (%s): %s failed: %s", tenant_id, row["name"], operation, reason)
        self._write(tenant_id, status="failed", status_reason=reason)
        self._event(row, "failed", f"{operation} failed: {reason}", None)
        await self.routes.unavailable(self.get(tenant_id), reason)

    async def _provision(self, tenant_id: str) -> None:
        row = self._require(tenant_id)
        self._write(tenant_id, status="provisioning", status_reason="")
        await self.routes.unavailable(row, "the tenant's server is starting")
        row = await self._ensure_port(row)
        await self._start_server(row)
        if row["auth_mode"] == "organization":
            await self._ensure_default_project(row)
        await self.routes.available(row, self._upstream(row))
        self._write(tenant_id, status="available", status_reason="")
        self._event(row, "available", f"tenant is available at {self.url(row['name'])}", None)

    async def _ensure_port(self, row: dict) -> dict:
        """Give the tenant a host port, or a new one if another program took it.

        The port stays the tenant's for its whole life, except when its
        server is not running and something else listens there: then the
        server could never start again, so it moves.
        """
        if row["port"] is not None:
            info = await self.runtime.inspect(row["id"])
            if info.state is InstanceState.RUNNING or ports.is_bindable(row["port"]):
                return row

        port_range = ports.parse_range(self.settings["tenants.port_range"])
        try:
            port = ports.allocate(self.store, port_range)
        except ports.NoFreePortError as error:
            raise OperationFailed(str(error)) from None
        if row["port"] is not None:
            logger.warning(
                "Tenant %s (%s): port %d is taken by another program; moving to %d",
                row["id"],
                row["name"],
                row["port"],
                port,
            )
            self._event(
                row, "step", f"port {row['port']} is taken by another program; using {port}", None
            )
        self._write(row["id"], port=port)
        return self._require(row["id"])

    async def _start_server(self, row: dict) -> None:
        spec = self.spec(row)
        self._event(row, "step", f"creating the {self.runtime.kind} server", None)
        await self.runtime.create(spec)
        self._event(row, "step", "starting the server", None)
        await self.runtime.start(spec)
        self._event(row, "step", "waiting for the server to answer /health", None)
        await self._wait_healthy(row, spec)

    async def _ensure_default_project(self, row: dict) -> None:
        """Create the project ``default`` on an organization tenant's server.

        ZenML creates it only in local mode, and the stock client runs
        pipelines in it when no other project is set. The daemon signs in
        as its first active superuser with an API key that it deletes
        afterwards. A failure is logged and left to the users, who can
        create projects themselves.
        """
        # The admin API owns API keys; importing it at the top would be
        # circular, because it imports this module.
        from zenpro_local.api.users import insert_api_key

        superuser = self.store.query_one(
            "SELECT id FROM users WHERE is_superuser = 1 AND is_active = 1 "
            "ORDER BY created LIMIT 1"
        )
        if superuser is None:
            logger.warning(
                "Tenant %s: no active superuser to create its project", row["id"]
            )
            return
        with self.store.transaction():
            key = insert_api_key(
                self.store, superuser["id"], f"project of tenant {row['name']}", 1
            )
        base_url = self.runtime.address(self.spec(row))
        try:
            created = await zenml_api.ensure_project(
                self.session, base_url, key["key"], DEFAULT_PROJECT
            )
        except (zenml_api.ZenMLApiError, aiohttp.ClientError, TimeoutError) as error:
            logger.warning(
                "Tenant %s: creating its default project failed: %s", row["id"], error
            )
            self._event(
                row, "step", f"creating the default project failed: {error}", None
            )
            return
        finally:
            with self.store.transaction() as db:
                db.execute("DELETE FROM api_keys WHERE id = ?", [key["id"]])
        if created:
            self._event(row, "step", f"project {DEFAULT_PROJECT!r} created", None)

    async def _wait_healthy(self, row: dict, spec: TenantSpec) -> None:
        restarts = (await self.runtime.inspect(row["id"])).restart_count

        async def still_running() -> bool:
            # A server that exits is restarted by Docker's restart policy;
            # a growing restart count means it crashed, so stop waiting.
            info = await self.runtime.inspect(row["id"])
            return info.state is InstanceState.RUNNING and info.restart_count == restarts

        try:
            await zenml_api.wait_healthy(
                self.session,
                self.runtime.address(spec),
                self.settings["tenants.start_timeout"],
                still_running,
            )
        except zenml_api.ZenMLApiError as error:
            tail = (await self.runtime.logs(row["id"], tail=20)).strip()
            last_lines = "\n".join(tail.splitlines()[-5:])
            raise OperationFailed(f"{error}; last log lines:\n{last_lines}") from None

    async def _deactivate(self, tenant_id: str) -> None:
        row = self._require(tenant_id)
        self._write(tenant_id, status="deactivating", status_reason="")
        await self.routes.unavailable(row, "the tenant is deactivated")
        await self._stop_and_remove(row)
        self._write(tenant_id, status="deactivated", status_reason="deactivated by request")
        self._event(row, "deactivated", "server removed; data kept", None)

    async def _restart(self, tenant_id: str) -> None:
        row = self._require(tenant_id)
        self._event(row, "step", "stopping the server", None)
        await self.runtime.stop(tenant_id, self._stop_timeouts())
        await self._provision(tenant_id)

    async def _upgrade(self, tenant_id: str, version: str) -> None:
        row = self._require(tenant_id)
        old_version = row["zenml_version"]
        self._write(tenant_id, status="provisioning", status_reason="")
        self._event(
            row, "step", f"stopping the server to upgrade {old_version} -> {version}", None
        )
        # Only one server may write the database: stop, copy it, then remove.
        await self.runtime.stop(tenant_id, self._stop_timeouts())
        snapshot = self._snapshot_path(row, old_version)
        await self.runtime.snapshot(tenant_id, snapshot)
        self._event(row, "step", f"database snapshot saved as {snapshot.name}", None)
        await self.runtime.remove(tenant_id)

        self._write(tenant_id, zenml_version=version)
        try:
            await self._provision(tenant_id)
        except (OperationFailed, TenantRuntimeError) as error:
            await self._roll_back(row, old_version, snapshot, str(error))
            return
        self._event(row, "upgraded", f"upgraded from {old_version} to {version}", None)

    async def _roll_back(
        self, row: dict, old_version: str, snapshot: Path, reason: str
    ) -> None:
        """Put the old version and the database snapshot back, then start."""
        tenant_id = row["id"]
        self._event(
            row, "step", f"upgrade failed, rolling back to {old_version}: {reason}", None
        )
        await self._stop_and_remove(row)

        self._write(tenant_id, zenml_version=old_version)
        await self.runtime.create(self.spec(self._require(tenant_id)))
        await self.runtime.restore(tenant_id, snapshot)
        await self._provision(tenant_id)

        self._write(
            tenant_id, status_reason=f"upgrade failed and was rolled back: {reason}"
        )
        self._event(row, "rolled_back", f"running {old_version} again", None)

    async def _delete(self, tenant_id: str, purge: bool) -> None:
        row = self._require(tenant_id)
        await self.routes.remove(row)
        await self._stop_and_remove(row)
        if not row["deleted"]:
            self._write(tenant_id, status="deleted", deleted=utcnow(), status_reason="")
            self._event(row, "deleted", "server and route removed; data kept", None)
        if purge:
            await self.runtime.purge(tenant_id)
            with self.store.transaction() as db:
                self._event(row, "purged", "tenant data deleted for good", None)
                db["tenants"].delete(tenant_id)
            logger.info("Tenant %s (%s) purged", tenant_id, row["name"])

    async def _stop_and_remove(self, row: dict) -> None:
        await self.runtime.stop(row["id"], self._stop_timeouts())
        await self.runtime.remove(row["id"])

    # Helpers

    def spec(self, row: dict) -> TenantSpec:
        """Return the runtime spec of a tenant row; it contains secrets."""
        values = self.secretbox.open(row["secrets"])
        version = row["zenml_version"]
        environment = {
            "ZENML_SERVER_JWT_SECRET_KEY": values["jwt_secret"],
            "ZENML_LOGGING_COLORS_DISABLED": "true",
        }
        mounts: dict[str, str] = {}
        extra_hosts: dict[str, str] = {}
        if row["auth_mode"] == "organization":
            environment.update(self._organization_environment(row, values))
            ca_file = str(self.settings.data_dir / "tls" / "ca.crt")
            if self.runtime is not None and self.runtime.kind == "docker":
                # The container reaches Caddy on the host through the
                # bridge gateway, and reads the CA from a read-only mount.
                mounts[ca_file] = CONTAINER_CA_FILE
                ca_file = CONTAINER_CA_FILE
                extra_hosts[urls.admin_host(self.settings)] = "host-gateway"
            environment["REQUESTS_CA_BUNDLE"] = ca_file
        else:
            # The server activates itself with the daemon's admin user when
            # it creates its database, so provisioning makes no API call.
            # Like the JWT key, the password is visible to whoever may
            # inspect the container.
            environment["ZENML_SERVER_AUTO_ACTIVATE"] = "true"
            environment["ZENML_DEFAULT_USER_NAME"] = ADMIN_USERNAME
            environment["ZENML_DEFAULT_USER_PASSWORD"] = values["admin_password"]
        return TenantSpec(
            tenant_id=row["id"],
            organization_id=row["organization_id"],
            name=row["name"],
            zenml_version=version,
            port=row["port"],
            image=self.settings["tenants.image"].format(version=version),
            environment=environment,
            extra_hosts=extra_hosts,
            mounts=mounts,
            memory_limit_mb=row["memory_limit"] or self.settings["tenants.memory_limit"],
            cpu_limit=row["cpu_limit"] or self.settings["tenants.cpu_limit"],
            pids_limit=self.settings["tenants.pids_limit"],
        )

    def _organization_environment(self, row: dict, values: dict) -> dict[str, str]:
        """Return the variables that put a ZenML server in organization mode."""
        organization = self.store.query_one(
            "SELECT name FROM organizations WHERE id = ?", [row["organization_id"]]
        )
        return {
            "ZENML_SERVER_DEPLOYMENT_TYPE": "cloud",
            "ZENML_SERVER_URL": self.url(row["name"]),
            "ZENML_SERVER_PRO_API_URL": urls.api_url(self.settings),
            "ZENML_SERVER_PRO_DASHBOARD_URL": urls.console_url(self.settings),
            "ZENML_SERVER_PRO_OAUTH2_CLIENT_SECRET": values["client_secret"],
            "ZENML_SERVER_PRO_OAUTH2_AUDIENCE": OAUTH2_AUDIENCE,
            "ZENML_SERVER_PRO_ORGANIZATION_ID": row["organization_id"],
            "ZENML_SERVER_PRO_ORGANIZATION_NAME": organization["name"],
            "ZENML_SERVER_PRO_WORKSPACE_ID": row["id"],
            "ZENML_SERVER_PRO_WORKSPACE_NAME": row["name"],
        }

    def _check_management_plane_reachable(self, auth_mode: str) -> None:
        """Reject organization mode where the tenant could not reach the daemon.

        A container reaches the management plane through Caddy on the
        Docker bridge's gateway, which a loopback-only Caddy does not
        listen on: the server would exit at start-up.

        Raises:
            ApiError: 422 naming the settings to change.
        """
        bind = self.settings["caddy.bind"]
        if auth_mode != "organization" or self.runtime is None:
            return
        if self.runtime.kind != "docker" or not is_loopback(bind):
            return
        raise ApiError(
            422,
            f"auth_mode 'organization' needs Caddy reachable from tenant "
            f"containers, but caddy.bind is {bind!r}: set caddy.bind to an "
            "address the containers reach (empty for every interface), or "
            "create the tenant with auth_mode 'local'",
            field="auth_mode",
        )

    async def set_auth_mode(self, row: dict, auth_mode: str, *, actor_id: str) -> dict:
        """Switch the tenant between ``local`` and ``organization`` auth.

        The server restarts with the new environment and keeps its data.
        Users of the other mode lose access: local users cannot sign in to
        an organization tenant, and organization users have no local
        account on a local one.

        Raises:
            ApiError: 409 when busy or not available.
        """
        if auth_mode == row["auth_mode"]:
            return row
        self._check_management_plane_reachable(auth_mode)
        if row["desired_state"] != "available":
            raise conflict(
                f"tenant {row['name']!r} is deactivated: reactivate it first"
            )
        await self._begin(row, "restart", actor_id)
        values = self.secretbox.open(row["secrets"])
        if "client_secret" not in values:
            values["client_secret"] = secrets.token_urlsafe(32)
        self._write(
            row["id"],
            auth_mode=auth_mode,
            secrets=self.secretbox.seal(values),
            client_secret_hash=_hash_secret(values["client_secret"]),
            status="provisioning",
        )
        self._event(row, "auth_mode", f"auth mode set to {auth_mode}", actor_id)
        self._launch(row["id"], "restart", self._restart)
        return self.get(row["id"])

    def _base_url(self, row: dict) -> str:
        return f"http://127.0.0.1:{row['port']}"

    def _upstream(self, row: dict) -> str:
        return f"127.0.0.1:{row['port']}"

    def _stop_timeouts(self) -> StopTimeouts:
        graceful = self.settings["tenants.stop_timeout"]
        return StopTimeouts(graceful=graceful, terminate=graceful / 2, kill=graceful / 2)

    def _snapshot_path(self, row: dict, version: str) -> Path:
        folder = self.settings.data_dir / "snapshots" / row["id"]
        folder.mkdir(parents=True, exist_ok=True)
        stamp = utcnow().replace(":", "").replace("+", "Z")[:17]
        return folder / f"{stamp}-{version}.db"

    def _require(self, tenant_id: str) -> dict:
        row = self.get(tenant_id)
        if row is None:
            raise OperationFailed(f"tenant {tenant_id} no longer exists")
        return row

    def _write(self, tenant_id: str, **changes) -> None:
        changes["updated"] = utcnow()
        self.store.db["tenants"].update(tenant_id, changes)

    def _event(self, row: dict, action: str, message: str, actor_id: str | None) -> None:
        self.store.record_event(
            action,
            "tenant",
            row["id"],
            actor_id=actor_id,
            organization_id=row["organization_id"],
            tenant_id=row["id"],
            message=message,
        )

    def launch_repair(self, tenant_id: str, name: str) -> bool:
        """Start an operation chosen by the reconciler; False if one runs."""
        if tenant_id in self._running:
            return False
        row = self._require(tenant_id)
        work: dict[str, Callable[[str], Awaitable[None]]] = {
            "provision": self._provision,
            "restart": self._restart,
            "deactivate": self._deactivate,
            "delete": lambda tid: self._delete(tid, False),
        }
        self._event(row, "repair", f"reconciler runs {name}", None)
        self._launch(tenant_id, name, work[name])
        return True


def _reads_tenant(permission: str) -> bool:
    resource, _, action = permission.partition(":")
    return resource in ("*", "tenant") and action in ("*", "read")


def _new_tenant_secrets() -> dict[str, str]:
    return {
        "jwt_secret": secrets.token_hex(32),
        "admin_password": secrets.token_urlsafe(24),
        "client_secret": secrets.token_urlsafe(32),
    }


def _hash_secret(secret: str) -> str:
    """Return the stored form of a client secret (256 random bits: SHA-256)."""
    return hashlib.sha256(secret.encode()).hexdigest()
