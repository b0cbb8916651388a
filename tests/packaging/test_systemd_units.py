"""The shipped systemd units pass `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
UNITS = ("zenpro-local.service", "zenpro-local-caddy.service")
INSTALL_PREFIX = "/opt/zenpro-local"


@pytest.fixture
def installed_units(tmp_path: Path) -> list[Path]:
    """The units with the install prefix pointing at this checkout.

    verify checks that ExecStart's program exists, and the units name the
    documented install location; this checkout stands in for it.
    """
    venv = Path(sys.prefix)
    paths = []
    for name in UNITS:
        text = (REPO_ROOT / "systemd" / name).read_text()
        text = text.replace(f"{INSTALL_PREFIX}/.venv", str(venv))
        text = text.replace(INSTALL_PREFIX, str(REPO_ROOT))
        path = tmp_path / name
        path.write_text(text)
        paths.append(path)
    return paths


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)
def test_units_verify(installed_units):
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, installed_units)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_daemon_unit_hardening():
    text = (REPO_ROOT / "systemd" / "zenpro-local.service").read_text()
    for line in (
        "Type=notify",
        "User=zenpro",
        "SupplementaryGroups=docker",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/zenpro-local",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "Restart=on-failure",
        "Environment=ZENPRO_CONFIG=/etc/zenpro-local/config.toml",
    ):
        assert line in text.splitlines(), line


def test_caddy_unit_resumes():
    text = (REPO_ROOT / "systemd" / "zenpro-local-caddy.service").read_text()
    assert "--resume" in text
