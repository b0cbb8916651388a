"""Calls to a tenant's ZenML server API, as a user or the daemon makes them."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

# Seconds a fresh ZenML server gets to return 200 on /health. It took 5 to
# 20 s on a 2-core test machine, more while other tests loaded the CPUs.
HEALTH_TIMEOUT = 120.0


async def wait_for_health(base_url: str, timeout: float = HEALTH_TIMEOUT) -> None:
    """Poll ``base_url``/health until it returns 200, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error = "no response"
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{base_url}/health") as response:
                    if response.status == 200:
                        return
                    last_error = f"status {response.status}"
            except aiohttp.ClientError as error:
                last_error = repr(error)
            await asyncio.sleep(0.5)
    pytest.fail(f"{base_url}/health did not return 200 in {timeout}s: {last_error}")


ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "correct-horse-battery"


async def activate_server(base_url: str) -> None:
    """Activate a fresh ZenML server, creating the admin user."""
    body = {"admin_username": ADMIN_USERNAME, "admin_password": ADMIN_PASSWORD}
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{base_url}/api/v1/activate", json=body) as response:
            assert response.status == 200, await response.text()


async def server_id(base_url: str) -> str:
    """Return the id the ZenML server stores in its database."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/api/v1/info") as response:
            assert response.status == 200, await response.text()
            return (await response.json())["id"]


async def login(base_url: str) -> str:
    """Log in as the admin user and return an access token."""
    form = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base_url}/api/v1/login", data=form) as response:
            assert response.status == 200, await response.text()
            return (await response.json())["access_token"]


async def user_names(base_url: str, token: str) -> set[str]:
    """Return the names of the server's users."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(f"{base_url}/api/v1/users") as response:
            assert response.status == 200, await response.text()
            return {user["name"] for user in (await response.json())["items"]}


async def create_user(base_url: str, token: str, name: str) -> None:
    """Create a user through the ZenML API."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "name": name,
        "password": ADMIN_PASSWORD,
        "active": True,
        "is_admin": False,
    }
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{base_url}/api/v1/users", json=body) as response:
            assert response.status == 200, await response.text()
