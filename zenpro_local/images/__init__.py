"""Offline builder for the ZenML server image that tenants run."""

from zenpro_local.images.builder import (
    BASE_IMAGE,
    DEFAULT_IMAGE_TEMPLATE,
    ImageBuildError,
    build_image,
    default_image,
    default_work_dir,
    find_debian_mirror,
)

__all__ = [
    "BASE_IMAGE",
    "DEFAULT_IMAGE_TEMPLATE",
    "ImageBuildError",
    "build_image",
    "default_image",
    "default_work_dir",
    "find_debian_mirror",
]
