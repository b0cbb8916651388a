"""Fixtures shared by every test: a real daemon on an ephemeral port."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from zenpro_local import config
from zenpro_local.daemon import build_app


@dataclass
class Response:
    status: int
    body: Any
    headers: dict


@dataclass
class Daemon:
    """A running daemon and a way to call its admin API."""

    url: str
    data_dir: Path
    admin_token: str
    session: aiohttp.ClientSession

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = "admin",
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict | None = None,
    ) -> Response:
        """Send a request; ``token="admin"`` means the admin's API key."""
        headers = dict(headers or {})
        if token == "admin":
            token = self.admin_token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.url + path, json=json, data=data, headers=headers
        ) as response:
            text = await response.text()
            try:
                body = await response.json(content_type=None) if text else None
            except ValueError:
                body = text
            return Response(response.status, body, dict(response.headers))


def make_settings(data_dir: Path, **overrides: Any) -> config.Settings:
    """Return settings for a test daemon with its data in ``data_dir``."""
    environ = {"ZENPRO_DATA_DIR": str(data_dir), "ZENPRO_HTTPS_PORT": "8443"}
    for name, value in overrides.items():
        environ[config.ENV_PREFIX + name.upper()] = str(value)
    return config.load(None, environ)


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """A daemon that keeps tenant records only (no tenant servers)."""
    settings = make_settings(tmp_path / "data")
    app = build_app(settings, run_tenants=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        token = (settings.data_dir / "admin-token").read_text().strip()
        yield Daemon(
            url=str(server.make_url("")).rstrip("/"),
            data_dir=settings.data_dir,
            admin_token=token,
            session=session,
        )
    await server.close()


def cache_dir() -> Path:
    """Folder kept between runs: ZenML virtual environments live there.

    ``$ZENPRO_TEST_CACHE``, by default ``~/.cache/zenpro-local-tests``.
    """
    configured = os.environ.get("ZENPRO_TEST_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "zenpro-local-tests"


@pytest.fixture(scope="session")
def zenml_venv() -> Path:
    """A virtual environment with zenml[server] 0.98.0, made once per machine.

    It serves the process runtime and the stock zenml client of the
    end-to-end tests.
    """
    from zenpro_local.runtime.venvs import VenvManager

    manager = VenvManager(cache_dir() / "venvs")
    return asyncio.run(manager.ensure_venv("0.98.0"))
