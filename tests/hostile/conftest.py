"""Fixtures of the hostile-input tests: a daemon for synchronous clients."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiohttp import web

from tests.conftest import make_settings
from zenpro_local.daemon import build_app


@dataclass
class ThreadedDaemon:
    """A daemon serving from an event loop in a thread of its own."""

    url: str
    data_dir: Path
    admin_token: str


def _serve_in_thread(data_dir: Path, **overrides: Any) -> Iterator[ThreadedDaemon]:
    settings = make_settings(data_dir, **overrides)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="daemon", daemon=True)
    thread.start()

    def run(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    async def start() -> web.AppRunner:
        runner = web.AppRunner(build_app(settings, run_tenants=False))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    runner = run(start())
    try:
        host, port = runner.addresses[0][:2]
        token = (settings.data_dir / "admin-token").read_text().strip()
        yield ThreadedDaemon(f"http://{host}:{port}", settings.data_dir, token)
    finally:
        run(runner.cleanup())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@pytest.fixture(scope="module")
def threaded_daemon(tmp_path_factory) -> Iterator[ThreadedDaemon]:
    """A daemon that keeps tenant records only, for synchronous clients.

    Schemathesis and Hypothesis call the API from plain functions, so the
    daemon runs its own event loop in a thread. Failed authentications are
    not rate limited here: Schemathesis probes every operation with bad
    credentials, and the limit has tests of its own.
    """
    data_dir = tmp_path_factory.mktemp("threaded") / "data"
    yield from _serve_in_thread(data_dir, auth_max_failures=1_000_000)
