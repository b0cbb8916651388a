"""Fixtures for dashboard tests: a real daemon behind Caddy and real Chromium.

The browser reaches the dashboard the way a person does, over HTTPS at
``https://admin.<base_domain>:<port>/dashboard/``, and trusts the daemon's
CA through its own NSS database, as the dashboard's instructions say.
Screenshots go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import make_settings
from tests.lifecycle.conftest import (  # noqa: F401 (fixture)
    TenantDaemon,
    build_runtime,
    cleanup,
    docker_client,
    free_port,
)
from zenpro_local.daemon import build_app

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "dashboard"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BASE_DOMAIN = "zenml.localhost"
LAPTOP = (1366, 900)
PHONE = (390, 844)


@dataclass
class DashboardDaemon(TenantDaemon):
    """A daemon with the Docker runtime and Caddy, and its dashboard's address."""

    https_port: int = 0

    @property
    def dashboard_url(self) -> str:
        return f"https://admin.{BASE_DOMAIN}:{self.https_port}/dashboard/"

    async def create_user(self, username: str, password: str) -> dict:
        response = await self.call(
            "POST", "/api/v1/users", json={"username": username, "password": password}
        )
        assert response.status == 201, response.body
        return response.body

    async def add_member(self, organization_id: str, user_id: str, role_id: str):
        response = await self.call(
            "POST",
            f"/api/v1/organizations/{organization_id}/members",
            json={"user_id": user_id, "role_id": role_id},
        )
        assert response.status == 201, response.body


@pytest.fixture
def browser_binaries() -> None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.skip(f"{path} is missing: apt-get install chromium chromium-driver")
    if shutil.which("certutil") is None:
        pytest.skip("certutil is missing: apt-get install libnss3-tools")


class ThreadedDaemon:
    """The daemon's app served from an event loop in its own thread.

    Selenium's calls block, so a daemon in the test's own event loop could
    not answer the browser while the test waits for a page. The app is
    built in that thread too, because its SQLite connection belongs to the
    thread that opens it.
    """

    def __init__(self, build: Callable[[], web.Application], port: int):
        self.build = build
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    def start(self) -> None:
        self.thread.start()
        self._run(self._start())

    def stop(self) -> None:
        try:
            if self.runner is not None:
                self._run(self.runner.cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=60)
            self.loop.close()

    async def _start(self) -> None:
        self.runner = web.AppRunner(self.build())
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def _run(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=180)


@pytest.fixture
async def dashboard_daemon(
    tmp_path: Path, docker_client, browser_binaries  # noqa: F811
) -> AsyncIterator[DashboardDaemon]:
    """A daemon with the Docker runtime; its containers are removed afterwards."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    https_port, listen_port = free_port(), free_port()
    # Caddy proxies the admin host to the address in "listen".
    settings = make_settings(
        data_dir,
        reconcile_interval=2,
        health_interval=1,
        tenants_stop_timeout=5,
        https_port=https_port,
        # Tenants in organization mode, the default, reach the daemon
        # through Caddy on the Docker bridge's gateway.
        caddy_bind="0.0.0.0",
        base_domain=BASE_DOMAIN,
        listen=f"127.0.0.1:{listen_port}",
    )
    runtime = build_runtime("docker", data_dir)
    server = ThreadedDaemon(lambda: build_app(settings, runtime), listen_port)
    try:
        await asyncio.to_thread(server.start)
        async with aiohttp.ClientSession() as session:
            yield DashboardDaemon(
                url=f"http://127.0.0.1:{listen_port}",
                data_dir=data_dir,
                admin_token=(data_dir / "admin-token").read_text().strip(),
                session=session,
                kind="docker",
                runtime=runtime,
                https_port=https_port,
            )
    finally:
        await asyncio.to_thread(server.stop)
        cleanup("docker", data_dir)


def trust_ca(home: Path, ca_file: Path) -> None:
    """Add the CA to the NSS database that Chromium reads under ``home``."""
    database = home / ".pki" / "nssdb"
    database.mkdir(parents=True)
    subprocess.run(
        ["certutil", "-d", f"sql:{database}", "-N", "--empty-password"], check=True
    )
    subprocess.run(
        [
            "certutil",
            "-d",
            f"sql:{database}",
            "-A",
            "-n",
            "zenpro-local test CA",
            "-t",
            "C,,",
            "-i",
            str(ca_file),
        ],
        check=True,
    )


@pytest.fixture
async def ca_file(dashboard_daemon: DashboardDaemon, tmp_path: Path) -> Path:
    response = await dashboard_daemon.session.get(
        f"{dashboard_daemon.url}/api/v1/ca.pem"
    )
    assert response.status == 200
    path = tmp_path / "zenpro-local-ca.pem"
    path.write_bytes(await response.read())
    return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture
def open_browser(request, tmp_path: Path, ca_file: Path) -> Callable:
    """Return a function that starts a fresh headless Chromium; all are quit.

    When the test fails, each browser's page, screenshot and console log are
    saved as ``failed-<test>-<n>.*`` next to the other screenshots.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def start(name: str):
        home = tmp_path / f"browser-{name}"
        trust_ca(home, ca_file)
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={home / 'profile'}",
            f"--window-size={LAPTOP[0]},{LAPTOP[1]}",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(
            executable_path=str(CHROMEDRIVER),
            env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
            log_output=str(tmp_path / f"chromedriver-{name}.log"),
        )
        driver = webdriver.Chrome(options=options, service=service)
        drivers.append(driver)
        return driver

    yield start
    for number, driver in enumerate(drivers):
        if getattr(request.node, "call_failed", False):
            _save_failure(driver, f"failed-{request.node.name}-{number}")
        driver.quit()


def _save_failure(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    (ARTIFACTS / f"{name}.html").write_text(driver.page_source)
    entries = driver.get_log("browser")
    lines = [f"{entry['level']} {entry['message']}" for entry in entries]
    (ARTIFACTS / f"{name}.log").write_text("\n".join(lines) + "\n")


def screenshot(driver, name: str) -> Path:
    """Save a full-page screenshot as ``test-artifacts/dashboard/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, max(height + 120, 600))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(path))
    return path


def set_width(driver, size: tuple[int, int]) -> None:
    driver.set_window_size(*size)
