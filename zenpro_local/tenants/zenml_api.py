"""The few calls the daemon makes to a tenant's ZenML server REST API."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

import aiohttp

logger = logging.getLogger(__name__)

_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=15)
# Seconds between two /health polls, and between two checks that the
# server still runs, while waiting for a server to start.
HEALTH_POLL = 0.1
RUNNING_CHECK = 1.0
# A healthy server responds to /health in milliseconds; a hung one never does.
_HEALTH_TIMEOUT = aiohttp.ClientTimeout(total=5)


class ZenMLApiError(Exception):
    """A ZenML server returned an error or could not be reached."""


async def _call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    step: str,
    token: str | None = None,
    missing_ok: bool = False,
    **request: object,
) -> dict | None:
    """Send one request and return its JSON body.

    Args:
        step: What the request does, for the error ("creating the project").
        token: A bearer token to send, if any.
        missing_ok: Return None for a 404 instead of raising.
        request: Further arguments of the request (``json``, ``data``).

    Raises:
        ZenMLApiError: The server returned an error status.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.request(
        method, url, headers=headers, timeout=_REQUEST_TIMEOUT, **request
    ) as response:
        if response.status == 404 and missing_ok:
            return None
        if response.status >= 400:
            text = (await response.text())[:300]
            raise ZenMLApiError(f"{step} failed with HTTP {response.status}: {text}")
        return await response.json()


async def is_healthy(session: aiohttp.ClientSession, base_url: str) -> bool:
    """Return whether ``GET /health`` returns 200."""
    try:
        async with session.get(f"{base_url}/health", timeout=_HEALTH_TIMEOUT) as response:
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


async def wait_healthy(
    session: aiohttp.ClientSession,
    base_url: str,
    timeout: float,
    still_running: Callable[[], Awaitable[bool]],
) -> None:
    """Wait until ``/health`` answers, the server ends, or ``timeout`` passes.

    ``/health`` is polled every :data:`HEALTH_POLL` seconds, so a server is
    noticed at most that long after it is up. ``still_running`` may call
    the runtime, so it runs only every :data:`RUNNING_CHECK` seconds.

    Raises:
        ZenMLApiError: the server ended or did not answer in time.
    """
    deadline = time.monotonic() + timeout
    next_check = time.monotonic() + RUNNING_CHECK
    while time.monotonic() < deadline:
        if await is_healthy(session, base_url):
            return
        if time.monotonic() >= next_check:
            if not await still_running():
                raise ZenMLApiError("the server exited before /health returned 200")
            next_check = time.monotonic() + RUNNING_CHECK
        await asyncio.sleep(HEALTH_POLL)
    raise ZenMLApiError(f"timed out: /health did not return 200 within {timeout:.0f} s")


async def server_info(session: aiohttp.ClientSession, base_url: str) -> dict:
    return await _call(session, "GET", f"{base_url}/api/v1/info", "reading server info")


async def activate(
    session: aiohttp.ClientSession, base_url: str, username: str, password: str
) -> None:
    """Activate a fresh server, creating its admin user."""
    body = {"admin_username": username, "admin_password": password}
    url = f"{base_url}/api/v1/activate"
    await _call(session, "PUT", url, "activating the server", json=body)


async def login(
    session: aiohttp.ClientSession, base_url: str, username: str, password: str
) -> str:
    """Return an access token for a local ZenML user."""
    form = {"username": username, "password": password}
    url = f"{base_url}/api/v1/login"
    return (await _call(session, "POST", url, "logging in", data=form))["access_token"]


async def create_service_account_key(
    session: aiohttp.ClientSession,
    base_url: str,
    token: str,
    account_name: str,
    key_name: str,
) -> str:
    """Create (or reuse) a service account and return a new API key for it."""
    accounts = f"{base_url}/api/v1/service_accounts"
    account = await _call(
        session,
        "GET",
        f"{accounts}/{account_name}",
        "reading the service account",
        token,
        missing_ok=True,
    )
    if account is None:
        body = {"name": account_name, "active": True}
        account = await _call(
            session, "POST", accounts, "creating the service account", token, json=body
        )

    created = await _call(
        session,
        "POST",
        f"{accounts}/{account['id']}/api_keys",
        "creating the API key",
        token,
        json={"name": key_name},
    )
    return created["body"]["key"]


async def ensure_project(
    session: aiohttp.ClientSession, base_url: str, token: str, name: str
) -> bool:
    """Create the project ``name`` unless it exists; return whether it was made."""
    projects = f"{base_url}/api/v1/projects"
    found = await _call(
        session, "GET", projects, "listing projects", token, params={"name": name}
    )
    if found.get("total"):
        return False

    body = {"name": name, "display_name": name}
    await _call(session, "POST", projects, "creating the project", token, json=body)
    return True
