"""Build a ZenML server image without a container registry.

The recipe needs only Debian's package mirror and PyPI (or a wheel cache
filled earlier), so it works where no registry can be reached:

1. ``debootstrap`` a minimal Debian rootfs with Python and import it into
   Docker as :data:`BASE_IMAGE` (skipped when that tag exists);
2. fetch ``zenml[server]`` and its dependencies as wheels into a cache
   folder under the work directory (offline when the cache is complete);
3. ``docker build`` a Dockerfile that installs those wheels with
   ``pip --no-index`` into a virtual environment.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import string
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import docker
import docker.errors
import requests

logger = logging.getLogger(__name__)

#: Image name the daemon runs for a ZenML version. An offline build uses the
#: same name, so the daemon finds the image whether it was pulled or built.
DEFAULT_IMAGE_TEMPLATE = "zenmldocker/zenml-server:{version}"

#: Debian release of the base image. Its python3 (3.11) decides which
#: wheels fit the image.
DEBIAN_SUITE = "bookworm"
BASE_IMAGE = f"zenpro-local/debian-base:{DEBIAN_SUITE}"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
IMAGE_PYTHON_VERSION = (3, 11)

#: User and group id the server runs as inside the image.
SERVER_UID = 1000
SERVER_PORT = 8080

# Label of the intermediate image that installs the wheels. The build
# deletes that image afterwards because nothing runs from it.
_BUILD_STAGE_LABEL = "io.zenpro-local.build-stage=install"

# Suite names that mark an apt source as a Debian archive (and not, say, a
# vendor's repository listed next to it).
_DEBIAN_SUITES = {
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "sid",
    "oldstable",
    "stable",
    "testing",
    "unstable",
}

# Seconds the Docker client waits for the next chunk of build output. pip
# may print nothing for minutes while it installs on a slow machine.
_BUILD_CLIENT_TIMEOUT = 1800

# Pre-PEP 600 names of manylinux_2_17, manylinux_2_12 and manylinux_2_5.
_LEGACY_MANYLINUX = ("manylinux2014", "manylinux2010", "manylinux1")

Progress = Callable[[str], None]


class ImageBuildError(Exception):
    """The image could not be built. The message names the step and the fix."""


def default_work_dir() -> Path:
    """Return the folder that keeps the wheel cache between builds."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "zenpro-local" / "images"


def default_image(zenml_version: str) -> str:
    """Return the image name the daemon uses for ``zenml_version``."""
    return DEFAULT_IMAGE_TEMPLATE.format(version=zenml_version)


def build_image(
    zenml_version: str,
    tag: str,
    work_dir: Path,
    *,
    progress: Progress | None = None,
    force: bool = False,
    mirror: str | None = None,
    client: docker.DockerClient | None = None,
) -> None:
    """Build the ZenML server image ``tag`` for ``zenml_version`` offline.

    Idempotent: does nothing when ``tag`` exists, unless ``force`` is set.
    The base image and the wheel cache are reused between builds.

    Args:
        zenml_version: ZenML release to install, such as ``"0.98.0"``.
        tag: Image name and tag to create.
        work_dir: Folder for the wheel cache and temporary build files.
        progress: Called with one line of text per build step or output line.
        force: Rebuild ``tag`` even if it exists.
        mirror: Debian mirror URL for debootstrap; by default the first
            Debian archive among this machine's apt sources.
        client: Docker client to use; by default one from the environment.

    Raises:
        ImageBuildError: A step failed; the message names the step.
    """
    report = progress or logger.info
    client = client or _docker_client()

    if not force and _image_exists(client, tag):
        report(f"Image {tag} exists; nothing to build")
        return

    work_dir.mkdir(parents=True, exist_ok=True)
    if _image_exists(client, BASE_IMAGE):
        report(f"Reusing base image {BASE_IMAGE}")
    else:
        _build_base_image(client, work_dir, mirror or find_debian_mirror(), report)

    wheel_dir = work_dir / "wheels" / f"zenml-{zenml_version}"
    _fetch_wheels(zenml_version, wheel_dir, report)

    _build_server_image(client, zenml_version, tag, work_dir, wheel_dir, report)
    report(f"Built image {tag}")


def find_debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """Return the URL of the first Debian archive in the apt sources.

    Reads ``sources.list`` and ``sources.list.d/*.list`` (one-line format)
    and ``sources.list.d/*.sources`` (deb822 format). Security archives and
    non-Debian repositories are skipped.

    Raises:
        ImageBuildError: No Debian archive is configured.
    """
    for uri, suites in _apt_sources(apt_dir):
        if "security" in uri:
            continue
        if any(suite in _DEBIAN_SUITES for suite in suites):
            return uri
    raise ImageBuildError(
        f"No Debian archive found in the apt sources under {apt_dir}; "
        "pass the mirror URL explicitly (--mirror)"
    )


def _apt_sources(apt_dir: Path) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(uri, suites)`` for every binary package source in order."""
    one_line_files = [apt_dir / "sources.list"]
    one_line_files += sorted((apt_dir / "sources.list.d").glob("*.list"))
    for path in one_line_files:
        if path.is_file():
            yield from _parse_one_line_sources(path.read_text())

    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        yield from _parse_deb822_sources(path.read_text())


def _parse_one_line_sources(text: str) -> Iterator[tuple[str, list[str]]]:
    for line in text.splitlines():
        # Drop comments and bracketed options such as [arch=amd64].
        words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            yield words[1], [words[2]]


def _parse_deb822_sources(text: str) -> Iterator[tuple[str, list[str]]]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()

        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        for uri in fields.get("uris", "").split():
            yield uri, suites


def _docker_client() -> docker.DockerClient:
    try:
        return docker.from_env(timeout=_BUILD_CLIENT_TIMEOUT)
    except docker.errors.DockerException as error:
        raise ImageBuildError(
            f"Cannot reach the Docker engine ({error}); start dockerd "
            "(scripts/ensure-docker.sh does) and retry"
        ) from error


def _image_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    except (docker.errors.APIError, requests.RequestException) as error:
        raise ImageBuildError(f"Cannot inspect image {name}: {error}") from error
    return True


def _build_base_image(
    client: docker.DockerClient, work_dir: Path, mirror: str, report: Progress
) -> None:
    """Debootstrap a minimal Debian with Python and import it as BASE_IMAGE."""
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "debootstrap is not installed; install it (apt-get install "
            "debootstrap, or run scripts/ensure-docker.sh) and retry"
        )
    if os.geteuid() != 0:
        raise ImageBuildError(
            f"Building the base image {BASE_IMAGE} runs debootstrap, "
            "which needs root; run the build as root"
        )

    scratch = Path(tempfile.mkdtemp(prefix="base-", dir=work_dir))
    try:
        rootfs = scratch / "rootfs"
        report(f"Running debootstrap {DEBIAN_SUITE} from {mirror}")
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(BASE_PACKAGES),
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ],
            step="debootstrap",
        )

        archive = scratch / "rootfs.tar"
        _run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."],
            step="packing the rootfs",
        )

        report(f"Importing the rootfs as {BASE_IMAGE}")
        repository, tag = BASE_IMAGE.rsplit(":", 1)
        try:
            client.api.import_image_from_file(
                str(archive), repository=repository, tag=tag
            )
        except (docker.errors.APIError, requests.RequestException) as error:
            raise ImageBuildError(
                f"Importing {BASE_IMAGE} failed: {error}"
            ) from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fetch_wheels(zenml_version: str, wheel_dir: Path, report: Progress) -> None:
    """Fill ``wheel_dir`` with every wheel ``zenml[server]`` needs.

    Tries the cache alone first, so a rebuild needs no network at all.
    """
    requirement = f"zenml[server]=={zenml_version}"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--quiet"]
    local_only = ["--no-index", "--find-links", str(wheel_dir)]

    if sys.version_info[:2] == IMAGE_PYTHON_VERSION:
        # pip wheel also builds wheels for packages published only as sdists,
        # so the image never compiles anything.
        fetch = "wheel"
        target = ["--wheel-dir", str(wheel_dir)]
    else:
        # A host Python other than the image's: fetch binary wheels for the
        # image's interpreter and platform instead.
        fetch = "download"
        target = ["--dest", str(wheel_dir), *_image_platform_options()]

    try:
        _run([*pip, fetch, *local_only, *target, requirement], step="pip")
        report(f"All wheels for {requirement} found in {wheel_dir}")
        return
    except ImageBuildError:
        report(f"Fetching wheels for {requirement} into {wheel_dir}")

    _run(
        [*pip, fetch, "--find-links", str(wheel_dir), *target, requirement],
        step=f"fetching wheels for {requirement}",
    )


def _image_platform_options() -> list[str]:
    major, minor = IMAGE_PYTHON_VERSION
    machine = platform.machine()
    options = [
        "--only-binary=:all:",
        "--implementation=cp",
        f"--python-version={major}.{minor}",
        f"--abi=cp{major}{minor}",
    ]

    # Bookworm ships glibc 2.36, so every manylinux tag up to 2.36 fits. pip
    # matches --platform literally, so each tag is listed.
    platforms = [f"manylinux_2_{glibc}_{machine}" for glibc in range(36, 4, -1)]
    platforms += [f"{legacy}_{machine}" for legacy in _LEGACY_MANYLINUX]
    options += [f"--platform={tag}" for tag in platforms]
    return options


def _build_server_image(
    client: docker.DockerClient,
    zenml_version: str,
    tag: str,
    work_dir: Path,
    wheel_dir: Path,
    report: Progress,
) -> None:
    context = Path(tempfile.mkdtemp(prefix="context-", dir=work_dir))
    try:
        _write_build_context(context, zenml_version, wheel_dir)
        report(f"Building image {tag} (zenml[server]=={zenml_version})")
        _stream_build(client, context, tag, report)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    _prune_build_stage(client, report)


def _write_build_context(context: Path, zenml_version: str, wheel_dir: Path) -> None:
    template = resources.files(__package__).joinpath("Dockerfile.template")
    dockerfile = string.Template(template.read_text()).substitute(
        base_image=BASE_IMAGE,
        zenml_version=zenml_version,
        uid=SERVER_UID,
        port=SERVER_PORT,
        build_stage_label=_BUILD_STAGE_LABEL,
    )
    (context / "Dockerfile").write_text(dockerfile)

    wheels = context / "wheels"
    wheels.mkdir()
    for wheel in wheel_dir.glob("*.whl"):
        # Hard links keep the context cheap; a copy works across filesystems.
        try:
            os.link(wheel, wheels / wheel.name)
        except OSError:
            shutil.copy2(wheel, wheels / wheel.name)


def _stream_build(
    client: docker.DockerClient, context: Path, tag: str, report: Progress
) -> None:
    try:
        output = client.api.build(
            path=str(context),
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for chunk in output:
            if "error" in chunk:
                raise ImageBuildError(
                    f"docker build of {tag} failed: {chunk['error'].strip()}"
                )
            line = chunk.get("stream", "").strip()
            if line:
                report(line)
    except (docker.errors.APIError, requests.RequestException) as error:
        raise ImageBuildError(f"docker build of {tag} failed: {error}") from error


def _prune_build_stage(client: docker.DockerClient, report: Progress) -> None:
    try:
        result = client.images.prune(
            filters={"dangling": True, "label": _BUILD_STAGE_LABEL}
        )
    except (docker.errors.APIError, requests.RequestException) as error:
        # The image is built; a leftover intermediate image only costs space.
        logger.warning("Deleting the intermediate build image failed: %s", error)
        return
    freed = (result.get("SpaceReclaimed") or 0) // (1024 * 1024)
    report(f"Deleted the intermediate build image ({freed} MiB)")


def _run(command: list[str], *, step: str) -> None:
    """Run ``command``; raise ImageBuildError with its output's tail on failure."""
    logger.debug("Running %s", command)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        tail = "\n".join(output[-15:])
        raise ImageBuildError(
            f"{step} failed with exit code {result.returncode}:\n{tail}"
        )
