"""ProcessRuntime's process handling, with a small script in place of ZenML.

A real ZenML server cannot be made to ignore SIGINT or SIGTERM, or to leave a
process behind in its group. So these tests run :class:`ScriptRuntime`, the
same runtime with a short Python script as the server command. The script
ignores the signals named in its environment. Everything else (files, pids, signals,
identity checks) is the real code path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zenpro_local.runtime import (
    InstanceState,
    StopTimeouts,
    TenantRuntimeError,
    TenantSpec,
)
from zenpro_local.runtime.process import ProcessRuntime

# Ignores the signals in IGNORE_SIGNALS and starts a helper process in its
# process group, which inherits those and also ignores HELPER_IGNORE_SIGNALS.
# With EXIT_CODE set, kills the helper and exits after printing its lines.
SERVER_SCRIPT = """
import os, signal, subprocess, sys, time

def ignore(variable):
    for name in filter(None, os.environ.get(variable, "").split(",")):
        signal.signal(getattr(signal, name), signal.SIG_IGN)

ignore("IGNORE_SIGNALS")
helper = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
for number in range(5):
    print(f"line {number}", flush=True)
print(f"ready helper={helper.pid}", flush=True)
if "EXIT_CODE" in os.environ:
    helper.kill()
    sys.exit(int(os.environ["EXIT_CODE"]))
while True:
    time.sleep(1)
"""

HELPER_SCRIPT = """
import os, signal, time
for name in filter(None, os.environ.get("HELPER_IGNORE_SIGNALS", "").split(",")):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
print("helper ready", flush=True)
while True:
    time.sleep(1)
"""

FAST = StopTimeouts(graceful=1.0, terminate=1.0, kill=2.0)


class ScriptRuntime(ProcessRuntime):
    """A ProcessRuntime whose server is a script that can ignore signals."""

    def server_command(self, spec: TenantSpec, python: Path) -> list[str]:
        return [sys.executable, "-c", SERVER_SCRIPT, HELPER_SCRIPT]


@pytest.fixture
async def scripts(data_dir, zenml_venvs, daemon_id):
    """A ScriptRuntime whose servers are stopped in teardown."""
    runtime = ScriptRuntime(data_dir, zenml_venvs, daemon_id)
    yield runtime
    for instance in await runtime.list_instances():
        if instance.state is InstanceState.RUNNING:
            await runtime.stop(instance.tenant_id, FAST)


def script_spec(make_spec, **environment) -> TenantSpec:
    return make_spec(environment={"ZENML_SERVER_JWT_SECRET_KEY": "x", **environment})


async def start_script(runtime: ProcessRuntime, spec: TenantSpec) -> int:
    """Create and start a script server; return its helper's pid once ready."""
    await runtime.create(spec)
    await runtime.start(spec)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        log = await runtime.logs(spec.tenant_id)
        match = re.search(r"ready helper=(\d+)", log)
        if match and "helper ready" in log:
            return int(match.group(1))
        await asyncio.sleep(0.05)
    pytest.fail(f"script server never became ready; log:\n{log}")


def server_pid(runtime: ProcessRuntime, tenant_id: str) -> int:
    return int((runtime.tenant_dir(tenant_id) / "server.pid").read_text())


def is_alive(pid: int) -> bool:
    """Return whether ``pid`` runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


async def test_stop_escalates_to_sigterm(scripts, make_spec, caplog):
    spec = script_spec(make_spec, IGNORE_SIGNALS="SIGINT")
    helper = await start_script(scripts, spec)
    pid = server_pid(scripts, spec.tenant_id)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="zenpro_local.runtime.process"):
        await scripts.stop(spec.tenant_id, StopTimeouts(graceful=1.0, terminate=5.0))
    elapsed = time.monotonic() - started

    assert elapsed >= 1.0
    assert elapsed < 5.0
    assert len(caplog.records) == 1
    assert spec.tenant_id in caplog.text
    assert "after SIGINT; sending SIGTERM" in caplog.text
    assert not is_alive(pid)
    assert not is_alive(helper)
    assert (await scripts.inspect(spec.tenant_id)).state is InstanceState.CREATED


async def test_stop_escalates_to_sigkill(scripts, make_spec, caplog):
    spec = script_spec(make_spec, IGNORE_SIGNALS="SIGINT,SIGTERM")
    helper = await start_script(scripts, spec)
    pid = server_pid(scripts, spec.tenant_id)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="zenpro_local.runtime.process"):
        await scripts.stop(spec.tenant_id, StopTimeouts(graceful=0.5, terminate=0.5))
    elapsed = time.monotonic() - started

    assert elapsed >= 1.0
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "sending SIGTERM" in messages[0]
    assert "after SIGTERM; sending SIGKILL" in messages[1]
    assert all(spec.tenant_id in message for message in messages)
    assert not is_alive(pid)
    assert not is_alive(helper)
    assert (await scripts.inspect(spec.tenant_id)).state is InstanceState.CREATED


async def test_stop_waits_for_whole_group(scripts, make_spec, caplog):
    spec = script_spec(make_spec, HELPER_IGNORE_SIGNALS="SIGINT,SIGTERM")
    helper = await start_script(scripts, spec)
    pid = server_pid(scripts, spec.tenant_id)

    with caplog.at_level(logging.WARNING, logger="zenpro_local.runtime.process"):
        await scripts.stop(spec.tenant_id, FAST)

    # The server itself ends on SIGINT; only its helper needs SIGKILL.
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "sending SIGKILL" in messages[1]
    assert not is_alive(pid)
    assert not is_alive(helper)


async def test_stop_without_server_is_noop(scripts, make_spec):
    spec = script_spec(make_spec)
    await scripts.stop(spec.tenant_id, FAST)
    await scripts.create(spec)

    await scripts.stop(spec.tenant_id, FAST)

    assert (await scripts.inspect(spec.tenant_id)).state is InstanceState.CREATED


async def test_server_exit_reports_exited(scripts, make_spec):
    spec = script_spec(make_spec, EXIT_CODE="3")
    await scripts.create(spec)
    await scripts.start(spec)

    deadline = time.monotonic() + 10
    while (await scripts.inspect(spec.tenant_id)).state is not InstanceState.EXITED:
        assert time.monotonic() < deadline, "exit never detected"
        await asyncio.sleep(0.05)

    await scripts.stop(spec.tenant_id, FAST)
    assert (await scripts.inspect(spec.tenant_id)).state is InstanceState.EXITED
    await scripts.create(spec)
    assert (await scripts.inspect(spec.tenant_id)).state is InstanceState.EXITED
    assert "ready helper=" in await scripts.logs(spec.tenant_id)


async def test_recycled_pid_not_adopted(scripts, make_spec):
    spec = script_spec(make_spec)
    await start_script(scripts, spec)
    await scripts.stop(spec.tenant_id, FAST)
    folder = scripts.tenant_dir(spec.tenant_id)
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        start_new_session=True,
    )
    try:
        # The tenant's pid now belongs to an unrelated process that started
        # later than the recorded server.
        marker = json.loads((folder / "instance.json").read_text())
        marker.update(pid=stranger.pid, pid_start_time=1, boot_id="recorded")
        (folder / "instance.json").write_text(json.dumps(marker))
        (folder / "server.pid").write_text(f"{stranger.pid}\n")

        info = await scripts.inspect(spec.tenant_id)
        await scripts.stop(spec.tenant_id, FAST)
        await scripts.remove(spec.tenant_id)
        await scripts.purge(spec.tenant_id)

        assert info.state is InstanceState.EXITED
        assert stranger.poll() is None
        assert not folder.exists()
    finally:
        stranger.kill()
        stranger.wait()


async def test_purge_rejected_while_running(scripts, make_spec):
    spec = script_spec(make_spec)
    await start_script(scripts, spec)
    folder = scripts.tenant_dir(spec.tenant_id)

    with pytest.raises(TenantRuntimeError, match="Remove the tenant first"):
        await scripts.purge(spec.tenant_id)
    assert folder.is_dir()


async def test_remove_keeps_data_purge_deletes(scripts, make_spec):
    spec = script_spec(make_spec)
    helper = await start_script(scripts, spec)
    folder = scripts.tenant_dir(spec.tenant_id)
    with sqlite3.connect(folder / "zenml.db") as connection:
        connection.execute("CREATE TABLE kept (value TEXT)")

    await scripts.remove(spec.tenant_id)

    assert (await scripts.inspect(spec.tenant_id)).state is InstanceState.MISSING
    assert await scripts.list_instances() == []
    assert await scripts.list_data() == [spec.tenant_id]
    assert (folder / "zenml.db").is_file()
    assert not (folder / "server.pid").exists()
    assert not (folder / "instance.json").exists()
    assert not is_alive(helper)

    await scripts.purge(spec.tenant_id)
    assert not folder.exists()
    assert await scripts.list_data() == []
    await scripts.purge(spec.tenant_id)
    await scripts.remove(spec.tenant_id)


async def test_create_same_spec_keeps_server(scripts, make_spec):
    spec = script_spec(make_spec)
    await start_script(scripts, spec)
    pid = server_pid(scripts, spec.tenant_id)

    await scripts.create(spec)
    await scripts.start(spec)

    assert server_pid(scripts, spec.tenant_id) == pid
    assert (await scripts.inspect(spec.tenant_id)).state is InstanceState.RUNNING


async def test_create_new_config_stops_server(scripts, make_spec):
    spec = script_spec(make_spec)
    await start_script(scripts, spec)
    pid = server_pid(scripts, spec.tenant_id)
    changed = dataclasses.replace(spec, environment={**spec.environment, "NEW": "1"})

    await scripts.create(changed)

    info = await scripts.inspect(spec.tenant_id)
    assert info.state is InstanceState.CREATED
    assert info.config_hash == changed.config_hash()
    assert info.config_hash != spec.config_hash()
    assert not is_alive(pid)


async def test_other_daemon_instance_untouched(
    scripts, make_spec, data_dir, zenml_venvs
):
    spec = script_spec(make_spec)
    await start_script(scripts, spec)
    other = ScriptRuntime(data_dir, zenml_venvs, "another-daemon")

    await other.stop(spec.tenant_id, FAST)
    await other.remove(spec.tenant_id)
    with pytest.raises(TenantRuntimeError, match="another daemon"):
        await other.create(spec)

    assert await other.list_instances() == []
    assert (await other.inspect(spec.tenant_id)).state is InstanceState.MISSING
    assert (await scripts.inspect(spec.tenant_id)).state is InstanceState.RUNNING


async def test_snapshot_restore_need_stopped_server(scripts, make_spec, data_dir):
    spec = script_spec(make_spec)
    await start_script(scripts, spec)
    snapshot = data_dir / "snapshot.db"

    with pytest.raises(TenantRuntimeError, match="stop it first"):
        await scripts.snapshot(spec.tenant_id, snapshot)
    with pytest.raises(TenantRuntimeError, match="stop it first"):
        await scripts.restore(spec.tenant_id, snapshot)
    assert not snapshot.exists()


async def test_snapshot_without_database_rejected(scripts, make_spec, data_dir):
    spec = script_spec(make_spec)
    await scripts.create(spec)

    with pytest.raises(TenantRuntimeError, match="no database yet"):
        await scripts.snapshot(spec.tenant_id, data_dir / "snapshot.db")


async def test_restore_rejects_non_sqlite(scripts, make_spec, data_dir):
    spec = script_spec(make_spec)
    await scripts.create(spec)
    database = scripts.tenant_dir(spec.tenant_id) / "zenml.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE original (value TEXT)")
    text_file = data_dir / "notes.txt"
    text_file.write_text("not a database\n" * 100)

    with pytest.raises(TenantRuntimeError, match="not a readable SQLite database"):
        await scripts.restore(spec.tenant_id, text_file)
    with pytest.raises(TenantRuntimeError, match="no such file"):
        await scripts.restore(spec.tenant_id, data_dir / "missing.db")

    with sqlite3.connect(database) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("original",)]


async def test_start_before_create_rejected(scripts, make_spec):
    spec = script_spec(make_spec)

    with pytest.raises(TenantRuntimeError, match="has not been created"):
        await scripts.start(spec)
    assert (await scripts.inspect(spec.tenant_id)).state is InstanceState.MISSING


@pytest.mark.parametrize("tenant_id", ["", "..", "../escape", "a/b", "x" * 129])
async def test_invalid_tenant_id_rejected(scripts, tenant_id):
    with pytest.raises(TenantRuntimeError, match="Invalid tenant id"):
        await scripts.inspect(tenant_id)


async def test_logs_returns_tail(scripts, make_spec):
    spec = script_spec(make_spec)
    await start_script(scripts, spec)

    full = await scripts.logs(spec.tenant_id, tail=1000)
    tail = await scripts.logs(spec.tenant_id, tail=3)

    assert "line 4" in full
    assert tail.splitlines() == full.splitlines()[-3:]
    assert len(tail.splitlines()) == 3
    assert await scripts.logs(spec.tenant_id, tail=0) == ""
    assert await scripts.logs("t-never-created") == ""


async def test_server_environment_minimal(scripts, make_spec, monkeypatch):
    monkeypatch.setenv("ZENPRO_DAEMON_SECRET", "daemon-only")
    spec = script_spec(make_spec, EXTRA="from-spec")
    folder = scripts.tenant_dir(spec.tenant_id)

    environment = scripts.server_environment(spec, folder)

    assert "ZENPRO_DAEMON_SECRET" not in environment
    assert environment["EXTRA"] == "from-spec"
    assert environment["ZENML_ANALYTICS_OPT_IN"] == "false"
    assert environment["ZENML_STORE_URL"] == f"sqlite:///{folder}/zenml.db"
    assert environment["ZENML_CONFIG_PATH"] == str(folder / "config")
    assert environment["HOME"] == str(folder)
    venv_bin = str(scripts.venvs.venv_python(spec.zenml_version).parent)
    assert environment["PATH"].split(os.pathsep)[0] == venv_bin
