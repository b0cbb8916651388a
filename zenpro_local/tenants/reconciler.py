"""Reconciliation: bring the runtime in line with the state database.

On start and then on a timer, one pass compares every tenant row with what
the runtime reports:

- a tenant that should be available but whose server is missing, exited or
  built from an older configuration is provisioned again;
- a tenant left in a transient status by a crash (or an engine that was
  down) has its operation run again, so nothing stays stuck;
- a deactivated tenant whose server still runs is stopped;
- servers that the daemon labelled but that no tenant row owns are removed;
  their data is never removed, only reported.

The same pass checks the health of available tenants: a server that stops
answering is restarted with backoff, and repeated failure ends in
``failed`` with the last log lines in the reason.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from zenpro_local.proxy import ProxyError
from zenpro_local.runtime import InstanceInfo, InstanceState, TenantRuntimeError
from zenpro_local.tenants import zenml_api
from zenpro_local.tenants.manager import TenantManager

logger = logging.getLogger(__name__)

# Failed health checks in a row before a tenant counts as down.
UNHEALTHY_AFTER = 3
# Restarts within RESTART_WINDOW seconds before the tenant is marked failed.
MAX_RESTARTS = 3
RESTART_WINDOW = 600.0
# Seconds to wait after the n-th restart in the window before the next one:
# RESTART_BACKOFF * 2**(n-1), so a server that keeps failing is not hammered.
RESTART_BACKOFF = 30.0


@dataclass
class _Health:
    failures: int = 0
    restarts: list[float] | None = None


class Reconciler:
    """Runs reconcile passes: at start, on a timer, and on request."""

    def __init__(
        self, manager: TenantManager, interval: float, health_interval: float
    ):
        self.manager = manager
        self.interval = interval
        self.health_interval = health_interval
        self._task: asyncio.Task | None = None
        self._health: dict[str, _Health] = {}
        self._lock = asyncio.Lock()
        self._reported_data: set[str] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="reconciler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        last_pass = time.monotonic()
        while True:
            # Up to 20% jitter keeps the checks of many tenants apart.
            tick = min(self.interval, self.health_interval)
            await asyncio.sleep(tick * random.uniform(0.8, 1.0))
            try:
                if time.monotonic() - last_pass >= self.interval * 0.8:
                    last_pass = time.monotonic()
                    await self.reconcile_once()
                else:
                    await self.check_health_once()
            except Exception:
                logger.exception("Reconcile pass failed; retrying next interval")

    async def check_health_once(self) -> None:
        """Check the health of every available tenant with no operation."""
        async with self._lock:
            rows = self.manager.store.query_all(
                "SELECT * FROM tenants WHERE status = 'available' "
                "AND desired_state = 'available'"
            )
            idle = [row for row in rows if not self.manager.busy(row["id"])]
            await asyncio.gather(*(self._check_health(row) for row in idle))

    async def reconcile_once(self) -> None:
        """Run one pass; passes never overlap."""
        async with self._lock:
            try:
                instances = await self.manager.runtime.list_instances()
            except TenantRuntimeError as error:
                logger.warning("Reconcile skipped: the runtime is unavailable: %s", error)
                return
            found = {instance.tenant_id: instance for instance in instances}
            rows = self.manager.store.query_all("SELECT * FROM tenants")

            for row in rows:
                await self._reconcile_tenant(row, found.get(row["id"]))
            await self._remove_orphans({row["id"] for row in rows}, found)
            await self._reconcile_routes()

    async def _reconcile_routes(self) -> None:
        """Restore Caddy's routes from the state database and renew the certificate."""
        routes = self.manager.routes
        rows = self.manager.store.query_all("SELECT * FROM tenants")
        try:
            busy = {row["id"] for row in rows if self.manager.busy(row["id"])}
            await routes.reconcile(rows, busy)
            await routes.renew_certificate()
        except ProxyError as error:
            logger.error("Reconciling Caddy's routes failed: %s", error)

    async def _reconcile_tenant(self, row: dict, instance: InstanceInfo | None) -> None:
        manager = self.manager
        tenant_id = row["id"]
        if manager.busy(tenant_id):
            return
        state = instance.state if instance else InstanceState.MISSING

        if row["desired_state"] == "deleted":
            if row["status"] != "deleted" or state is not InstanceState.MISSING:
                manager.launch_repair(tenant_id, "delete")
            return

        if row["desired_state"] == "deactivated":
            if row["status"] != "deactivated" or state is not InstanceState.MISSING:
                manager.launch_repair(tenant_id, "deactivate")
            return

        if row["status"] == "failed":
            # A failed tenant waits for an operator: retry is one request.
            return

        reason = self._needs_provision(row, instance, state)
        if reason:
            logger.info("Tenant %s (%s): %s; provisioning", tenant_id, row["name"], reason)
            manager.launch_repair(tenant_id, "provision")
            return
        await self._check_health(row)

    def _needs_provision(
        self, row: dict, instance: InstanceInfo | None, state: InstanceState
    ) -> str | None:
        if row["status"] != "available":
            return f"left {row['status']} by an interrupted operation"
        if state is not InstanceState.RUNNING:
            return f"its server is {state.value}"
        expected = self.manager.spec(row).config_hash()
        if instance is not None and instance.config_hash != expected:
            return "its server runs an older configuration"
        return None

    async def _check_health(self, row: dict) -> None:
        manager = self.manager
        health = self._health.setdefault(row["id"], _Health(restarts=[]))
        if await zenml_api.is_healthy(manager.session, f"http://127.0.0.1:{row['port']}"):
            health.failures = 0
            return

        health.failures += 1
        logger.warning(
            "Tenant %s (%s) failed a health check (%d in a row)",
            row["id"],
            row["name"],
            health.failures,
        )
        if health.failures < UNHEALTHY_AFTER:
            return

        now = time.monotonic()
        health.restarts = [t for t in health.restarts if now - t < RESTART_WINDOW]
        if len(health.restarts) >= MAX_RESTARTS:
            await self._give_up(row)
            return
        if health.restarts:
            backoff = RESTART_BACKOFF * 2 ** (len(health.restarts) - 1)
            if now - health.restarts[-1] < backoff:
                return
        logger.warning(
            "Tenant %s (%s) does not respond to /health; restarting it", row["id"], row["name"]
        )
        health.restarts.append(now)
        health.failures = 0
        manager.launch_repair(row["id"], "restart")

    async def _give_up(self, row: dict) -> None:
        logs = await self.manager.runtime.logs(row["id"], tail=20)
        last_lines = "\n".join(logs.strip().splitlines()[-5:])
        reason = (
            f"the server stopped answering /health and {MAX_RESTARTS} restarts "
            f"in {RESTART_WINDOW / 60:.0f} minutes did not help; last log "
            f"lines:\n{last_lines}"
        )
        await self.manager.mark_failed(row["id"], reason)
        self._health.pop(row["id"], None)

    async def _remove_orphans(
        self, tenant_ids: set[str], found: dict[str, InstanceInfo]
    ) -> None:
        runtime = self.manager.runtime
        for tenant_id in found.keys() - tenant_ids:
            logger.warning("Removing server of unknown tenant %s", tenant_id)
            try:
                await runtime.remove(tenant_id)
            except TenantRuntimeError as error:
                logger.error("Removing server of unknown tenant %s failed: %s", tenant_id, error)

        remove_orphans = getattr(runtime, "remove_orphans", None)
        if remove_orphans is not None:
            removed = await remove_orphans(tenant_ids)
            for name in removed:
                logger.warning("Removed orphaned object %s", name)

        try:
            data = await runtime.list_data()
        except TenantRuntimeError:
            return
        for tenant_id in set(data) - tenant_ids - self._reported_data:
            self._reported_data.add(tenant_id)
            logger.warning(
                "Data of unknown tenant %s is kept; delete it by hand if unneeded",
                tenant_id,
            )
