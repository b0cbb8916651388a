"""VenvManager with small local wheels named ``zenml``, installed offline.

A second real ``zenml[server]`` install would take 40 s to minutes. So these
tests install hand-made wheels of a package named ``zenml`` from a local
folder with ``--no-index``. The venv creation, pip install, version check,
marker and locking are the real code path, and only the package is small.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from zenpro_local.runtime import TenantRuntimeError
from zenpro_local.runtime.process import ProcessRuntime
from zenpro_local.runtime.venvs import MARKER_NAME, VenvError, VenvManager

FAKE_VERSIONS = ("0.0.1", "0.0.2")


class CountingVenvManager(VenvManager):
    """A VenvManager that counts the environments it builds."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.builds: list[str] = []

    async def _build(self, version: str, path: Path) -> None:
        self.builds.append(version)
        await super()._build(version, path)


def write_wheel(folder: Path, version: str) -> Path:
    """Write a pure-Python wheel of a package ``zenml`` at ``version``."""
    dist_info = f"zenml-{version}.dist-info"
    files = {
        "zenml/__init__.py": f'__version__ = "{version}"\n',
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: zenml\nVersion: {version}\n"
            "Provides-Extra: server\n"
        ),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: zenpro-local-tests\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{name},sha256={encoded},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"

    path = folder / f"zenml-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


@pytest.fixture
def wheel_dir():
    path = Path(tempfile.mkdtemp(prefix="zenpro-wheels-"))
    for version in FAKE_VERSIONS:
        write_wheel(path, version)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def venvs(data_dir, wheel_dir) -> CountingVenvManager:
    return CountingVenvManager(
        data_dir / "venvs", find_links=wheel_dir, no_index=True, install_timeout=300
    )


def installed_version(python: Path) -> str:
    script = "import zenml, sys; print(zenml.__version__, sys.prefix)"
    output = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, check=True
    )
    return output.stdout.strip()


async def test_versions_get_separate_venvs(venvs):
    first, second = FAKE_VERSIONS

    paths = [await venvs.ensure_venv(version) for version in FAKE_VERSIONS]

    assert paths == [venvs.venv_path(first), venvs.venv_path(second)]
    assert paths[0] != paths[1]
    assert installed_version(venvs.venv_python(first)) == f"{first} {paths[0]}"
    assert installed_version(venvs.venv_python(second)) == f"{second} {paths[1]}"
    assert venvs.list_versions() == list(FAKE_VERSIONS)


async def test_concurrent_requests_build_once(venvs):
    version = FAKE_VERSIONS[0]

    paths = await asyncio.gather(*(venvs.ensure_venv(version) for _ in range(3)))

    assert set(paths) == {venvs.venv_path(version)}
    assert venvs.builds == [version]
    assert venvs.is_ready(version)


async def test_ready_venv_not_rebuilt(venvs, data_dir, wheel_dir):
    version = FAKE_VERSIONS[0]
    await venvs.ensure_venv(version)

    # Another manager over the same folder, as after a daemon restart.
    again = CountingVenvManager(data_dir / "venvs", find_links=wheel_dir, no_index=True)
    await again.ensure_venv(version)

    assert again.builds == []


async def test_failed_install_leaves_nothing(venvs):
    with pytest.raises(VenvError) as raised:
        await venvs.ensure_venv("9.9.9")

    message = str(raised.value)
    assert "ZenML 9.9.9" in message
    assert "pip install exited with status" in message
    assert "No matching distribution found for zenml" in message
    assert not venvs.venv_path("9.9.9").exists()
    assert not venvs.is_ready("9.9.9")
    assert venvs.list_versions() == []


async def test_incomplete_venv_rebuilt(venvs):
    version = FAKE_VERSIONS[1]
    leftover = venvs.venv_path(version)
    (leftover / "bin").mkdir(parents=True)
    (leftover / "bin" / "python").write_text("not an interpreter\n")

    assert not venvs.is_ready(version)
    await venvs.ensure_venv(version)

    assert venvs.builds == [version]
    assert (leftover / MARKER_NAME).is_file()
    assert installed_version(venvs.venv_python(version)).startswith(version)


async def test_wrong_installed_version_rejected(data_dir, wheel_dir):
    # The requirement ignores the version, so pip installs 0.0.2 for 0.0.1.
    venvs = VenvManager(
        data_dir / "venvs",
        requirement="zenml==0.0.2",
        find_links=wheel_dir,
        no_index=True,
    )

    with pytest.raises(VenvError, match="produced version '0.0.2'"):
        await venvs.ensure_venv("0.0.1")
    assert not venvs.venv_path("0.0.1").exists()


@pytest.mark.parametrize("version", ["", "../0.98.0", "1.0; rm -rf /", "1.0 2", "a1"])
async def test_invalid_version_rejected(venvs, version):
    with pytest.raises(VenvError, match="Invalid ZenML version"):
        await venvs.ensure_venv(version)
    assert venvs.builds == []


async def test_create_reports_install_failure(venvs, data_dir, make_spec):
    runtime = ProcessRuntime(data_dir, venvs, "test-daemon")
    spec = make_spec(zenml_version="9.9.8")

    with pytest.raises(TenantRuntimeError, match="ZenML 9.9.8 failed"):
        await runtime.create(spec)
    assert (await runtime.list_data()) == []
