"""Build the ZenML server image offline: ``python -m zenpro_local.images``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from zenpro_local.images.builder import (
    ImageBuildError,
    build_image,
    default_image,
    default_work_dir,
)

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, build the image and return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m zenpro_local.images",
        description="Build a ZenML server image without a container registry.",
    )
    parser.add_argument(
        "--zenml-version", required=True, help="ZenML release to install, e.g. 0.98.0"
    )
    parser.add_argument(
        "--tag",
        help="image name to create (default: zenmldocker/zenml-server:VERSION)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=default_work_dir(),
        help="folder for the wheel cache and build files (default: %(default)s)",
    )
    parser.add_argument(
        "--mirror",
        help="Debian mirror URL for debootstrap (default: from the apt sources)",
    )
    parser.add_argument(
        "--force", action="store_true", help="rebuild even if the image exists"
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        build_image(
            args.zenml_version,
            args.tag or default_image(args.zenml_version),
            args.work_dir,
            force=args.force,
            mirror=args.mirror,
        )
    except ImageBuildError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
