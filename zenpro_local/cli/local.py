"""Subcommands that run on this machine: serve, settings, image build."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from zenpro_local import config, log

EXIT_USAGE = 2


def run(args: argparse.Namespace) -> int:
    try:
        settings = config.load(args)
    except config.SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    if args.command == "settings":
        return print_settings(settings, args.json)
    log.configure(settings["log_level"])
    if args.command == "image":
        return build_image(settings, args)

    from zenpro_local import daemon
    from zenpro_local.store.migrations import SchemaVersionError

    try:
        daemon.serve(settings)
    except (OSError, SchemaVersionError) as error:
        logging.getLogger(__name__).error("Daemon stopped: %s", error)
        return 1
    return 0


def print_settings(settings: config.Settings, as_json: bool) -> int:
    rows = [
        {
            "name": setting.name,
            "value": str(settings[setting.name]),
            "source": settings.sources[setting.name],
            "unit": setting.unit,
            "help": setting.help,
        }
        for setting in config.SETTINGS
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        unit = f" {row['unit']}" if row["unit"] else ""
        print(f"{row['name']:<{width}}  {row['value']}{unit}  ({row['source']})")
    return 0


def build_image(settings: config.Settings, args: argparse.Namespace) -> int:
    from zenpro_local.images.builder import build_image as build

    version = args.zenml_version or settings["tenants.zenml_version"]
    tag = args.tag or settings["tenants.image"].format(version=version)
    work_dir = settings.data_dir / "image-build"
    work_dir.mkdir(parents=True, exist_ok=True)
    build(version, tag, work_dir, force=args.force, progress=print)
    print(f"Image {tag} is ready")
    return 0
