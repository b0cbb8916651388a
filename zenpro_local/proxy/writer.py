"""The one writer of the daemon's configuration in Caddy.

Every change to Caddy goes through :class:`RouteWriter`'s single task, so
writes never interleave. Callers change the desired set of routes, which
returns at once, and the task applies the latest desired set after a short
quiet time, so a burst of changes becomes one or a few Caddy reloads.

Each pass is one of two kinds:

- incremental, when the writer has a record of Caddy's entries: one change
  is one small request addressed by ``@id`` (PUT to insert, PATCH to replace,
  DELETE to remove), and several changes replace the tenant map's entries in
  one PATCH;
- full, on start, on request (reconcile, certificate change) and after any
  failure: read Caddy's whole configuration, merge the daemon's part into it,
  and write it back with ``If-Match`` only if something differs.

After each write the writer reads the changed part back and compares it with
what it wrote, then probes every changed host through Caddy's HTTPS port.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from zenpro_local.proxy.caddy_admin import CaddyAdmin
from zenpro_local.proxy.caddy_config import (
    MAPPINGS_PATH,
    TENANT_ID_PREFIX,
    DesiredConfig,
    find_mappings,
    merge_config,
    render_mapping,
    render_mappings,
)
from zenpro_local.proxy.errors import CaddyAdminError, ConfigChangedError, ProxyError
from zenpro_local.proxy.probe import RouteProbe
from zenpro_local.proxy.routes import Route

logger = logging.getLogger(__name__)

# Conditional full writes that lost a race with another writer are retried
# this many times.
MAX_CONFLICTS = 3
# Probes run at most this many at once.
PROBE_CONCURRENCY = 8
# Largest number of changed hosts probed after a full configuration write.
FULL_WRITE_PROBES = 16


@dataclass
class _Failure:
    generation: int
    error: BaseException


class RouteWriter:
    """Apply the desired set of routes to Caddy from one task.

    Args:
        admin: Client of Caddy's admin API.
        render: Returns the daemon's desired configuration for some routes.
        server_name: Name of the daemon's server in Caddy.
        base_domain: Tenants' hosts are ``<label>.<base_domain>``.
        probe: Probes changed hosts; None skips probes.
        admin_host: Host of the admin route, probed after full writes.
        ensure_caddy: Called before each full pass; starts the embedded Caddy
            when it is not running.
        coalesce_delay: Quiet time before a pass starts, in seconds.
        max_coalesce_delay: Maximum time a change waits for quiet, in seconds.
    """

    def __init__(
        self,
        admin: CaddyAdmin,
        render: Callable[[list[Route]], DesiredConfig],
        server_name: str,
        base_domain: str,
        probe: RouteProbe | None = None,
        admin_host: str | None = None,
        ensure_caddy: Callable[[], Awaitable[None]] | None = None,
        coalesce_delay: float = 0.005,
        max_coalesce_delay: float = 0.1,
    ) -> None:
        self.admin = admin
        self.render = render
        self.server_name = server_name
        self.base_domain = base_domain
        self.probe = probe
        self.admin_host = admin_host
        self.ensure_caddy = ensure_caddy
        self.coalesce_delay = coalesce_delay
        self.max_coalesce_delay = max_coalesce_delay
        self.pass_count = 0

        self._desired: dict[str, Route] = {}
        # Map entries Caddy has, by tenant id; None when unknown, which makes
        # the next pass a full one.
        self._applied: dict[str, dict[str, Any]] | None = None
        self._generation = 0
        self._synced_generation = 0
        self._failure: _Failure | None = None
        self._full_requested = True
        self._force_reload = False
        self._first_change = 0.0
        self._last_change = 0.0
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task | None = None

    @property
    def routes(self) -> dict[str, Route]:
        """The desired routes by tenant id (a copy)."""
        return dict(self._desired)

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="caddy-route-writer")

    async def close(self) -> None:
        """Stop the writer task; changes not yet written are dropped."""
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    def set(self, route: Route) -> int:
        """Add or replace one route; return the change's generation."""
        if self._desired.get(route.tenant_id) == route:
            return self._generation
        self._desired[route.tenant_id] = route
        return self._changed()

    def remove(self, tenant_id: str) -> int:
        """Remove one route if present; return the change's generation."""
        if self._desired.pop(tenant_id, None) is None:
            return self._generation
        return self._changed()

    def replace(self, routes: list[Route]) -> int:
        """Make ``routes`` the whole desired set; return the change's generation."""
        desired = {route.tenant_id: route for route in routes}
        if desired == self._desired:
            return self._generation
        self._desired = desired
        return self._changed()

    def request_full(self, force_reload: bool = False) -> int:
        """Ask for a full pass; return its generation.

        Args:
            force_reload: Make Caddy reload even if its configuration is
                unchanged, so it reads certificate files again.
        """
        self._full_requested = True
        self._force_reload = self._force_reload or force_reload
        return self._changed()

    async def wait(self, generation: int | None = None) -> None:
        """Wait until a pass covering ``generation`` finished.

        Args:
            generation: A value returned by a change; by default the latest.

        Raises:
            ProxyError: The pass covering ``generation`` failed; the error
                gives the reason.
        """
        target = self._generation if generation is None else generation
        async with self._progress:
            while self._synced_generation < target:
                failure = self._failure
                if failure is not None and failure.generation >= target:
                    raise ProxyError(f"Caddy was not updated: {failure.error}") from (
                        failure.error
                    )
                if self._task is None or self._task.done():
                    raise ProxyError("The Caddy route writer is not running.")
                await self._progress.wait()

    def _changed(self) -> int:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._wakeup.is_set():
            self._first_change = now
        self._last_change = now
        self._generation += 1
        self._wakeup.set()
        return self._generation

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            await self._coalesce(loop)
            self._wakeup.clear()

            generation = self._generation
            routes = list(self._desired.values())
            full = self._full_requested or self._applied is None
            force_reload = self._force_reload
            self._full_requested = False
            self._force_reload = False
            try:
                if full:
                    await self._full_pass(routes, force_reload)
                else:
                    await self._incremental_pass(routes)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # every failure is reported to waiters
                self._applied = None
                self._force_reload = self._force_reload or force_reload
                logger.error("Updating Caddy failed: %s", error)
                await self._finish(generation, error)
            else:
                await self._finish(generation, None)

    async def _coalesce(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            quiet_at = self._last_change + self.coalesce_delay
            deadline = self._first_change + self.max_coalesce_delay
            delay = min(quiet_at, deadline) - loop.time()
            if delay <= 0:
                return
            await asyncio.sleep(delay)

    async def _finish(self, generation: int, error: BaseException | None) -> None:
        self.pass_count += 1
        async with self._progress:
            if error is None:
                self._synced_generation = max(self._synced_generation, generation)
            else:
                self._failure = _Failure(generation, error)
            self._progress.notify_all()

    async def _incremental_pass(self, routes: list[Route]) -> None:
        applied = self._applied or {}
        entries = {route.tenant_id: render_mapping(route) for route in routes}
        added = [tenant for tenant in entries if tenant not in applied]
        changed = [
            tenant
            for tenant in entries
            if tenant in applied and applied[tenant] != entries[tenant]
        ]
        removed = [tenant for tenant in applied if tenant not in entries]
        count = len(added) + len(changed) + len(removed)
        if count == 0:
            return

        if count == 1:
            await self._write_one(added, changed, removed, entries, applied)
        else:
            await self._write_all(routes)
        logger.info(
            "Caddy routes updated: %d added, %d changed, %d removed",
            len(added),
            len(changed),
            len(removed),
        )

        self._applied = entries
        by_tenant = {route.tenant_id: route for route in routes}
        probed = [by_tenant[tenant] for tenant in added + changed]
        gone_hosts = [self._host(applied[tenant]) for tenant in removed]
        await self._probe(probed, gone_hosts)

    async def _write_one(
        self,
        added: list[str],
        changed: list[str],
        removed: list[str],
        entries: dict[str, dict[str, Any]],
        applied: dict[str, dict[str, Any]],
    ) -> None:
        if added:
            entry = entries[added[0]]
            # PUT on an array index inserts; the entries' order is irrelevant.
            await self.admin.write("PUT", f"{MAPPINGS_PATH}/0", entry)
            await self._check_entry(added[0], entry["@id"], entry)
        elif changed:
            # A renamed tenant's entry gets a new @id; PATCH replaces the
            # entry found by its old one.
            entry = entries[changed[0]]
            await self.admin.write("PATCH", f"/id/{applied[changed[0]]['@id']}", entry)
            await self._check_entry(changed[0], entry["@id"], entry)
        else:
            entry_id = applied[removed[0]]["@id"]
            await self.admin.write("DELETE", f"/id/{entry_id}")
            await self._check_entry(removed[0], entry_id, None)

    async def _write_all(self, routes: list[Route]) -> None:
        mappings = render_mappings(routes)
        await self.admin.write("PATCH", MAPPINGS_PATH, mappings)
        stored, _ = await self.admin.get(MAPPINGS_PATH)
        if stored != mappings:
            raise ProxyError(
                "Caddy's tenant map differs from what was just written to it; "
                "another writer may be changing it."
            )

    async def _check_entry(
        self, tenant_id: str, entry_id: str, expected: dict[str, Any] | None
    ) -> None:
        try:
            stored, _ = await self.admin.get(f"/id/{entry_id}")
        except CaddyAdminError as error:
            if error.status == 404 and expected is None:
                return
            raise
        if stored != expected:
            raise ProxyError(
                f"Caddy's entry for tenant {tenant_id} differs from what was just "
                "written to it; another writer may be changing it."
            )

    async def _full_pass(self, routes: list[Route], force_reload: bool) -> None:
        if self.ensure_caddy is not None:
            await self.ensure_caddy()
        desired = self.render(routes)
        for _ in range(MAX_CONFLICTS):
            current, etag = await self.admin.get("/config/")
            merged = merge_config(current, desired)
            if merged == current and not force_reload:
                written = False
                break
            try:
                await self.admin.write(
                    "POST", "/config/", merged, if_match=etag, force_reload=force_reload
                )
            except ConfigChangedError:
                logger.info("Caddy's configuration changed during reconcile; retrying")
                continue
            written = True
            break
        else:
            raise ProxyError(
                f"Caddy's configuration changed {MAX_CONFLICTS} times during one "
                "reconcile; another writer keeps changing it."
            )

        mappings = render_mappings(routes)
        stored, _ = await self.admin.get(MAPPINGS_PATH)
        if stored != mappings:
            raise ProxyError(
                "Caddy's tenant map differs from what was just written to it; "
                "another writer may be changing it."
            )
        self._applied = {route.tenant_id: render_mapping(route) for route in routes}
        if not written:
            logger.debug("Caddy already has the desired configuration")
            return

        before = find_mappings(current, self.server_name) or []
        before_by_id = {entry.get("@id"): entry for entry in before}
        probed = []
        for route in routes:
            entry = render_mapping(route)
            if before_by_id.get(entry["@id"]) != entry:
                probed.append(route)
        desired_hosts = {route.host for route in routes}
        gone_hosts = [
            self._host(entry)
            for entry in before
            if str(entry.get("@id", "")).startswith(TENANT_ID_PREFIX)
            and self._host(entry) not in desired_hosts
        ]
        logger.info(
            "Reconciled Caddy's configuration: %d routes, %d changed",
            len(routes),
            len(probed) + len(gone_hosts),
        )
        # One full write loads every route at once, so a sample shows that
        # Caddy serves it; probing a thousand hosts would delay start-up.
        if len(probed) > FULL_WRITE_PROBES:
            probed = random.sample(probed, FULL_WRITE_PROBES)
        if len(gone_hosts) > FULL_WRITE_PROBES:
            gone_hosts = random.sample(gone_hosts, FULL_WRITE_PROBES)
        await self._probe(probed, gone_hosts, admin=True)

    def _host(self, entry: dict[str, Any]) -> str:
        label = str(entry.get("input"))
        # Entries written before the map was keyed by label have whole hosts.
        if "." in label:
            return label
        return f"{label}.{self.base_domain}"

    async def _probe(
        self, routes: list[Route], gone_hosts: list[str], admin: bool = False
    ) -> None:
        if self.probe is None:
            return
        desired_hosts = {route.host for route in self._desired.values()}
        limit = asyncio.Semaphore(PROBE_CONCURRENCY)

        async def limited(check: Awaitable[Any]) -> None:
            async with limit:
                await check

        checks = [self.probe.expect_route(route) for route in routes]
        # A host that another tenant took over is probed as that tenant's.
        checks += [
            self.probe.expect_absent(host)
            for host in gone_hosts
            if host not in desired_hosts
        ]
        if admin and self.admin_host is not None:
            checks.append(self.probe.expect_admin(self.admin_host))
        results = await asyncio.gather(
            *(limited(check) for check in checks), return_exceptions=True
        )
        errors = [result for result in results if isinstance(result, BaseException)]
        if errors:
            raise errors[0]
