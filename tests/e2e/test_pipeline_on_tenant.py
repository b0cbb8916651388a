"""End to end: the stock zenml client runs a pipeline on a tenant over HTTPS.

The daemon is started the way the README says (scripts/install-and-run.sh:
Docker runtime, embedded Caddy, HTTPS on an unprivileged port, base domain
zenml.localhost, a fresh data folder). Everything else goes through the
admin API and the tenants' ZenML APIs over HTTPS, verified against the
daemon's CA.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import aiohttp
import docker
import pytest

from tests.lifecycle.conftest import cleanup
from zenpro_local.runtime.base import LABEL_TENANT

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE = Path(__file__).with_name("two_step_pipeline.py")
TENANT_TIMEOUT = 300.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AdminApi:
    """Calls to the daemon's admin API with one user's API key."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str):
        self.session = session
        self.url = url
        self.token = token

    async def call(self, method: str, path: str, json_body=None) -> tuple[int, dict]:
        async with self.session.request(
            method,
            self.url + path,
            json=json_body,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            return response.status, await response.json(content_type=None)

    async def ok(self, method: str, path: str, json_body=None) -> dict:
        status, body = await self.call(method, path, json_body)
        assert status < 300, (status, body)
        return body

    async def wait_available(self, tenant_id: str) -> dict:
        deadline = time.monotonic() + TENANT_TIMEOUT
        while time.monotonic() < deadline:
            body = await self.ok("GET", f"/api/v1/tenants/{tenant_id}")
            if body["status"] == "available" and not body["operation"]:
                return body
            assert body["status"] != "failed", body["status_reason"]
            await asyncio.sleep(1)
        pytest.fail(f"tenant {tenant_id} not available after {TENANT_TIMEOUT} s")


class TenantApi:
    """Calls to a tenant's ZenML REST API over HTTPS through Caddy."""

    def __init__(self, session: aiohttp.ClientSession, url: str, context: ssl.SSLContext):
        self.session = session
        self.url = url
        self.context = context

    async def login(self, api_key: str) -> tuple[int, str | None]:
        async with self.session.post(
            f"{self.url}/api/v1/login",
            data={"grant_type": "zenml-api-key", "password": api_key},
            ssl=self.context,
        ) as response:
            body = await response.json(content_type=None)
            return response.status, (body or {}).get("access_token")

    async def get(self, path: str, token: str) -> dict:
        async with self.session.get(
            f"{self.url}{path}",
            headers={"Authorization": f"Bearer {token}"},
            ssl=self.context,
        ) as response:
            assert response.status == 200, await response.text()
            return await response.json()


def start_daemon(data_dir: Path, admin_port: int, https_port: int) -> None:
    environment = {**os.environ, "ZENPRO_DATA_DIR": str(data_dir)}
    result = subprocess.run(
        [
            "bash",
            str(REPO_ROOT / "scripts" / "install-and-run.sh"),
            "--runtime",
            "docker",
            "--listen",
            f"127.0.0.1:{admin_port}",
            "--https-port",
            str(https_port),
            "--base-domain",
            "zenml.localhost",
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "admin-token" in result.stdout


def stop_daemon(data_dir: Path) -> None:
    pid_file = data_dir / "daemon.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def run_pipeline(
    python: Path,
    url: str,
    api_key: str,
    ca_file: Path,
    workdir: Path,
    pro_api_url: str | None = None,
) -> str:
    """Run the two-step pipeline with the stock client in its own process.

    ``pro_api_url`` is the management plane of a tenant in organization
    mode, which the client needs for a ``ZENPROKEY_`` key.
    """
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "ZENML_CONFIG_PATH": str(workdir / "zenml-config"),
        "ZENML_STORE_URL": url,
        "ZENML_STORE_API_KEY": api_key,
        "REQUESTS_CA_BUNDLE": str(ca_file),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_LOGGING_COLORS_DISABLED": "true",
    }
    if pro_api_url:
        environment["ZENML_PRO_API_URL"] = pro_api_url
    result = subprocess.run(
        [str(python), str(PIPELINE)],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_ids = [
        line.split("=", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith("RUN_ID=")
    ]
    assert len(run_ids) == 1, result.stdout[-3000:]
    return run_ids[0]


@pytest.fixture
def daemon_dir(tmp_path: Path, docker_client):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    yield data_dir
    stop_daemon(data_dir)
    cleanup("docker", data_dir)


async def test_pipeline_runs_on_one_tenant_only(
    daemon_dir: Path, tmp_path: Path, zenml_venv: Path
):
    admin_port, https_port = free_port(), free_port()
    start_daemon(daemon_dir, admin_port, https_port)
    admin_url = f"http://127.0.0.1:{admin_port}"
    admin_token = (daemon_dir / "admin-token").read_text().strip()

    async with aiohttp.ClientSession() as session:
        admin = AdminApi(session, admin_url, admin_token)

        # 2. Organization, two tenants, a user with Developer on alpha only.
        organization = await admin.ok("POST", "/api/v1/organizations", {"name": "acme"})
        org_path = f"/api/v1/organizations/{organization['id']}"
        alpha = await admin.ok("POST", f"{org_path}/tenants", {"name": "alpha"})
        beta = await admin.ok("POST", f"{org_path}/tenants", {"name": "beta"})
        user = await admin.ok("POST", "/api/v1/users", {"username": "ada"})
        await admin.ok("POST", f"{org_path}/members", {"user_id": user["id"]})
        await admin.ok(
            "POST",
            f"{org_path}/role_assignments",
            {"role_id": "tenant-developer", "user_id": user["id"], "tenant_id": alpha["id"]},
        )
        user_key = await admin.ok("POST", f"/api/v1/users/{user['id']}/api_keys", {})
        alpha = await admin.wait_available(alpha["id"])
        beta = await admin.wait_available(beta["id"])
        assert alpha["url"] == f"https://alpha.zenml.localhost:{https_port}"

        # 3. As the user: credentials for alpha, then the stock client.
        as_user = AdminApi(session, admin_url, user_key["key"])
        credentials = await as_user.ok("POST", f"/api/v1/tenants/{alpha['id']}/api_keys")
        status, _ = await as_user.call("POST", f"/api/v1/tenants/{beta['id']}/api_keys")
        assert status == 404
        ca_pem = await admin.session.get(f"{admin_url}/api/v1/ca.pem")
        ca_file = tmp_path / "ca.pem"
        ca_file.write_bytes(await ca_pem.read())
        workdir = tmp_path / "client"
        workdir.mkdir()
        run_id = await asyncio.to_thread(
            run_pipeline,
            zenml_venv / "bin" / "python",
            alpha["url"],
            credentials["key"],
            ca_file,
            workdir,
            credentials["pro_api_url"],
        )

        # 4. Through each tenant's ZenML API over HTTPS via Caddy.
        context = ssl.create_default_context(cafile=str(ca_file))
        alpha_api = TenantApi(session, alpha["url"], context)
        beta_api = TenantApi(session, beta["url"], context)
        status, token = await alpha_api.login(credentials["key"])
        assert status == 200
        run = await alpha_api.get(f"/api/v1/runs/{run_id}?hydrate=true", token)
        assert run["body"]["status"] == "completed"
        # Lists in organization mode are per project: the daemon made "default".
        steps = await alpha_api.get(
            f"/api/v1/steps?pipeline_run_id={run_id}&project=default", token
        )
        assert sorted(step["name"] for step in steps["items"]) == ["add_one", "produce_number"]
        assert {step["body"]["status"] for step in steps["items"]} == {"completed"}
        artifacts = await alpha_api.get(
            "/api/v1/artifact_versions?size=100&project=default", token
        )
        assert artifacts["total"] >= 2

        status, _ = await beta_api.login(credentials["key"])
        assert status == 401
        beta_credentials = await admin.ok("POST", f"/api/v1/tenants/{beta['id']}/api_keys")
        status, beta_token = await beta_api.login(beta_credentials["key"])
        assert status == 200
        beta_runs = await beta_api.get("/api/v1/runs?project=default", beta_token)
        assert beta_runs["total"] == 0

        # 5. Restart the daemon: alpha keeps answering, its container is not
        # restarted, and the run is still there.
        client = docker.from_env()
        container = client.containers.list(
            filters={"label": f"{LABEL_TENANT}={alpha['id']}"}
        )[0]
        started_at = container.attrs["State"]["StartedAt"]
        direct = f"http://127.0.0.1:{container.ports['8080/tcp'][0]['HostPort']}"
        stop_daemon(daemon_dir)
        async with session.get(f"{direct}/health") as response:
            assert response.status == 200
        start_daemon(daemon_dir, admin_port, https_port)
        await admin.wait_available(alpha["id"])
        container.reload()
        assert container.attrs["State"]["StartedAt"] == started_at
        status, token = await alpha_api.login(credentials["key"])
        assert status == 200
        run = await alpha_api.get(f"/api/v1/runs/{run_id}", token)
        assert run["body"]["status"] == "completed"

        # 6. Deactivate and reactivate alpha: the run is still there.
        await admin.ok(
            "PATCH", f"/api/v1/tenants/{alpha['id']}", {"desired_state": "deactivated"}
        )
        deadline = time.monotonic() + TENANT_TIMEOUT
        while (await admin.ok("GET", f"/api/v1/tenants/{alpha['id']}"))["status"] != "deactivated":
            assert time.monotonic() < deadline
            await asyncio.sleep(1)
        await admin.ok(
            "PATCH", f"/api/v1/tenants/{alpha['id']}", {"desired_state": "available"}
        )
        await admin.wait_available(alpha["id"])
        status, token = await alpha_api.login(credentials["key"])
        assert status == 200
        run = await alpha_api.get(f"/api/v1/runs/{run_id}", token)
        assert run["body"]["status"] == "completed"
        client.close()
