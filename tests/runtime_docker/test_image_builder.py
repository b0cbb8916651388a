"""The offline image builder: apt source parsing and idempotent builds."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from zenpro_local.images import (
    BASE_IMAGE,
    ImageBuildError,
    build_image,
    default_image,
    default_work_dir,
    find_debian_mirror,
)

from .conftest import ZENML_VERSION


def write_apt_dir(root: Path, sources_list: str = "", **sources: str) -> Path:
    (root / "sources.list.d").mkdir(parents=True)
    (root / "sources.list").write_text(sources_list)
    for name, text in sources.items():
        (root / "sources.list.d" / name).write_text(text)
    return root


def test_mirror_from_one_line_sources(tmp_path):
    apt_dir = write_apt_dir(
        tmp_path,
        "# a comment\n"
        "deb http://security.example.org/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example.org/debian "
        "bookworm main\n",
    )

    assert find_debian_mirror(apt_dir) == "http://mirror.example.org/debian"


def test_mirror_from_deb822_sources(tmp_path):
    apt_dir = write_apt_dir(
        tmp_path,
        **{
            "vendor.sources": (
                "Types: deb\nURIs: https://vendor.example.org/apt\n"
                "Suites: nodistro\nComponents: main\n"
            ),
            "debian.sources": (
                "Types: deb-src\nURIs: http://source.example.org/debian\n"
                "Suites: bookworm\nComponents: main\n\n"
                "Types: deb\n# a comment\nURIs: http://mirror.example.org/debian\n"
                "Suites: bookworm bookworm-updates\nComponents: main\n\n"
                "Types: deb\nURIs: http://mirror.example.org/debian-security\n"
                "Suites: bookworm-security\nComponents: main\n"
            ),
        },
    )

    assert find_debian_mirror(apt_dir) == "http://mirror.example.org/debian"


def test_mirror_missing_names_option(tmp_path):
    apt_dir = write_apt_dir(
        tmp_path, "deb http://archive.example.org/ubuntu jammy main\n"
    )

    with pytest.raises(ImageBuildError, match="--mirror"):
        find_debian_mirror(apt_dir)


@pytest.mark.docker
def test_build_skips_existing_image(docker_engine, server_image, tmp_path):
    lines: list[str] = []

    build_image(
        ZENML_VERSION,
        default_image(ZENML_VERSION),
        tmp_path,
        progress=lines.append,
        client=docker_engine,
    )

    assert lines == [f"Image {default_image(ZENML_VERSION)} exists; nothing to build"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.docker
def test_built_image_runs_as_unprivileged_user(docker_engine, server_image):
    config = docker_engine.images.get(server_image).attrs["Config"]

    assert config["User"] == "1000:1000"
    assert "uvicorn" in config["Cmd"]
    assert config["Healthcheck"]["Test"][0] == "CMD"


@pytest.mark.docker
def test_build_new_tag_from_cache(docker_engine, server_image):
    # The session fixture filled the wheel cache and made the base image, so
    # this build needs no network and exercises docker build itself.
    tag = f"zenpro-local-test/zenml-server:{uuid.uuid4().hex[:12]}"
    lines: list[str] = []
    try:
        build_image(
            ZENML_VERSION,
            tag,
            default_work_dir(),
            progress=lines.append,
            client=docker_engine,
        )

        labels = docker_engine.images.get(tag).attrs["Config"]["Labels"]
        assert labels["io.zenpro-local.zenml-version"] == ZENML_VERSION
        assert f"Reusing base image {BASE_IMAGE}" in lines
        assert any(line.startswith("All wheels for") for line in lines)
        assert lines[-1] == f"Built image {tag}"
        dangling = docker_engine.images.list(
            filters={"dangling": True, "label": "io.zenpro-local.build-stage"}
        )
        assert dangling == []
    finally:
        docker_engine.images.remove(tag, noprune=False)
