"""Settings: each declared once, read from a TOML file, the environment and flags.

Precedence, lowest first: the declared default, the TOML file given with
``--config``, environment variables ``ZENPRO_<NAME>`` (dots become
underscores, e.g. ``ZENPRO_TLS_MODE``), then command-line flags
(``--tls-mode``). A setting named ``tls.mode`` lives in the TOML file as
``mode`` under a ``[tls]`` table.

Unknown keys and values of the wrong type stop start-up with a
:class:`SettingsError` that names the key, the value and the fix.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

ENV_PREFIX = "ZENPRO_"


class SettingsError(ValueError):
    """A setting is unknown, malformed or out of range."""


@dataclass(frozen=True)
class Setting:
    """One setting: its name, type, default, unit and help text."""

    name: str
    type: type
    default: Any
    help: str
    unit: str = ""
    choices: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.replace(".", "_").upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace(".", "-").replace("_", "-")


def _host_port(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "expected HOST:PORT, e.g. 127.0.0.1:8740"
    return None


def _port(value: int) -> str | None:
    if not 0 < value < 65536:
        return "expected a TCP port from 1 to 65535"
    return None


def _positive(value: float) -> str | None:
    # "nan" and "inf" parse as floats, in TOML and through float().
    if not math.isfinite(value) or value <= 0:
        return "expected a finite number greater than 0"
    return None


def _networks(value: str) -> str | None:
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"{item!r} is not an IP address or network, e.g. 10.0.0.0/8"
    return None


def _port_range(value: str) -> str | None:
    low, sep, high = value.partition("-")
    if not sep or not low.isdigit() or not high.isdigit():
        return "expected FIRST-LAST, e.g. 20000-29999"
    if not 1024 <= int(low) < int(high) < 65536:
        return "expected 1024 <= FIRST < LAST <= 65535"
    return None


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "zenpro-local")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "data_dir",
        Path,
        _default_data_dir(),
        "Folder for the state database, admin token, keys, certificates and "
        "local-process tenants' data.",
    ),
    Setting(
        "listen",
        str,
        "127.0.0.1:8740",
        "Address of the admin API and dashboard, as HOST:PORT.",
        check=_host_port,
    ),
    Setting(
        "base_domain",
        str,
        "zenml.localhost",
        "Domain under which tenants get host names: <tenant>.<base_domain>.",
    ),
    Setting(
        "https_port",
        int,
        443,
        "Port on which Caddy serves tenants over HTTPS. Ports below 1024 "
        "need root or CAP_NET_BIND_SERVICE.",
        check=_port,
    ),
    Setting(
        "runtime",
        str,
        "auto",
        "Where tenants run: 'docker' (one container each), 'process' (one "
        "local process each) or 'auto' (docker when an engine answers).",
        choices=("auto", "docker", "process"),
    ),
    Setting(
        "log_level",
        str,
        "info",
        "Least severe log level written to standard error.",
        choices=("debug", "info", "warning", "error"),
    ),
    Setting(
        "max_body_size",
        int,
        1048576,
        "Largest request body the admin API accepts; larger ones get 413.",
        unit="bytes",
        check=_positive,
    ),
    Setting(
        "reconcile_interval",
        float,
        30.0,
        "Time between two comparisons of the state database with the tenant "
        "runtime and Caddy.",
        unit="seconds",
        check=_positive,
    ),
    Setting(
        "health_interval",
        float,
        15.0,
        "Time between two health checks of a running tenant (with up to 20% "
        "random jitter).",
        unit="seconds",
        check=_positive,
    ),
    Setting(
        "auth.max_failures",
        int,
        10,
        "Failed authentications (invalid, unknown, revoked or expired API "
        "keys) accepted from one client address within auth.failure_window; "
        "further failing attempts get 429 until the oldest failure leaves the "
        "window. Valid keys are never limited.",
        check=_positive,
    ),
    Setting(
        "auth.trusted_proxies",
        str,
        "",
        "Comma-separated addresses or networks of reverse proxies, such as "
        "Caddy, whose X-Forwarded-For header names the client address that "
        "auth.max_failures counts. Empty: always count the TCP peer. Any "
        "process that connects from a listed address can choose the address "
        "counted, so list loopback only when no untrusted user runs processes "
        "on this machine.",
        check=_networks,
    ),
    Setting(
        "auth.failure_window",
        float,
        60.0,
        "Length of the sliding window in which auth.max_failures counts "
        "failed authentications per client address.",
        unit="seconds",
        check=_positive,
    ),
    Setting(
        "tenants.zenml_version",
        str,
        "0.98.0",
        "ZenML server version of new tenants, unless the request names one.",
    ),
    Setting(
        "tenants.auth_mode",
        str,
        "organization",
        "Auth mode of new tenants, unless the request names one: "
        "'organization' (the daemon's users and roles sign in and decide "
        "inside the tenant) or 'local' (the tenant's server keeps its own "
        "users).",
        choices=("organization", "local"),
    ),
    Setting(
        "tenants.image",
        str,
        "zenmldocker/zenml-server:{version}",
        "Docker image of tenant servers; {version} is replaced by the "
        "tenant's ZenML version. Build it offline with 'zenpro-local image "
        "build' where no registry answers.",
    ),
    Setting(
        "tenants.port_range",
        str,
        "20000-29999",
        "Host ports on 127.0.0.1 from which each tenant gets one, as "
        "FIRST-LAST.",
        check=_port_range,
    ),
    Setting(
        "tenants.memory_limit",
        int,
        1024,
        "Memory limit of each tenant container.",
        unit="MiB",
        check=_positive,
    ),
    Setting(
        "tenants.cpu_limit",
        float,
        1.0,
        "CPU limit of each tenant container.",
        unit="CPUs",
        check=_positive,
    ),
    Setting(
        "tenants.pids_limit",
        int,
        512,
        "Largest number of processes and threads in each tenant container.",
        check=_positive,
    ),
    Setting(
        "tenants.start_timeout",
        float,
        180.0,
        "Time a tenant server has to answer /health after it starts before "
        "the start counts as failed.",
        unit="seconds",
        check=_positive,
    ),
    Setting(
        "tenants.stop_timeout",
        float,
        10.0,
        "Time a tenant server has to exit after SIGINT; SIGTERM and then "
        "SIGKILL follow, each after half as long.",
        unit="seconds",
        check=_positive,
    ),
    Setting(
        "docker.url",
        str,
        "",
        "Docker engine address, e.g. unix:///var/run/docker.sock; empty "
        "means DOCKER_HOST or the default socket.",
    ),
    Setting(
        "process.venvs_dir",
        str,
        "",
        "Folder of the per-version ZenML virtual environments of the process "
        "runtime; empty means <data_dir>/venvs.",
    ),
    Setting(
        "tls.mode",
        str,
        "internal",
        "Where tenant certificates come from: 'internal' (the daemon's own "
        "CA), 'acme' (Caddy obtains them for a public domain) or 'files' "
        "(tls.cert_file and tls.key_file).",
        choices=("internal", "acme", "files"),
    ),
    Setting(
        "tls.cert_file",
        str,
        "",
        "With tls.mode = 'files': PEM certificate chain covering "
        "*.<base_domain>.",
    ),
    Setting(
        "tls.key_file",
        str,
        "",
        "With tls.mode = 'files': PEM private key of tls.cert_file.",
    ),
    Setting(
        "tls.acme_email",
        str,
        "",
        "With tls.mode = 'acme': contact address given to the ACME CA.",
    ),
    Setting(
        "tls.cert_lifetime",
        float,
        90.0,
        "Lifetime of certificates issued by the daemon's CA; they are "
        "renewed after two thirds of it.",
        unit="days",
        check=_positive,
    ),
    Setting(
        "caddy.admin_address",
        str,
        "",
        "Admin endpoint of an external Caddy (e.g. localhost:2019 or "
        "unix//run/caddy/admin.sock); empty starts Caddy as a child process.",
    ),
    Setting(
        "caddy.bind",
        str,
        "",
        "Address Caddy binds its HTTPS listener to; empty means every "
        "interface.",
    ),
)

_BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings, with the source each value came from."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def data_dir(self) -> Path:
        return Path(self.values["data_dir"]).expanduser().resolve()

    @property
    def listen_host(self) -> str:
        return self.values["listen"].rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.values["listen"].rpartition(":")[2])


def convert(setting: Setting, raw: Any, source: str) -> Any:
    """Convert ``raw`` to the setting's type and check it.

    Raises:
        SettingsError: naming the setting, the value, where it came from and
            what is expected.
    """
    value = _coerce(setting, raw, source)
    problem = None
    if setting.choices and value not in setting.choices:
        problem = "expected one of " + ", ".join(setting.choices)
    elif setting.check is not None:
        problem = setting.check(value)
    if problem:
        raise SettingsError(
            f"invalid value {raw!r} for setting {setting.name!r} "
            f"(from {source}): {problem}"
        )
    return value


def _coerce(setting: Setting, raw: Any, source: str) -> Any:
    expected = setting.type
    if isinstance(raw, str) and expected is not str:
        raw = _parse_string(setting, raw, source)
    if expected is float and isinstance(raw, int) and not isinstance(raw, bool):
        raw = float(raw)
    if expected is Path and isinstance(raw, str):
        return raw
    if not isinstance(raw, expected) or isinstance(raw, bool):
        raise SettingsError(
            f"invalid value {raw!r} for setting {setting.name!r} (from "
            f"{source}): expected {_type_name(expected)}"
        )
    return raw


def _parse_string(setting: Setting, raw: str, source: str) -> Any:
    if setting.type is Path:
        return raw
    try:
        return setting.type(raw)
    except ValueError:
        raise SettingsError(
            f"invalid value {raw!r} for setting {setting.name!r} (from "
            f"{source}): expected {_type_name(setting.type)}"
        ) from None


def _type_name(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "a string"}.get(
        kind, "a path"
    )


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def read_file(path: Path) -> dict[str, Any]:
    """Read a TOML settings file into ``{setting name: raw value}``.

    Raises:
        SettingsError: the file is missing, is not TOML or has unknown keys.
    """
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file)
    except FileNotFoundError:
        raise SettingsError(
            f"settings file {str(path)!r} not found: check --config or "
            f"{ENV_PREFIX}CONFIG"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"settings file {str(path)!r} is not TOML: {error}")

    flat = _flatten(table)
    for name in flat:
        if name not in _BY_NAME:
            raise SettingsError(
                f"unknown setting {name!r} in {str(path)!r}: remove it or "
                "see 'zenpro-local settings' for the known ones"
            )
    return flat


def read_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Return the raw values of settings set through ``ZENPRO_*`` variables."""
    found = {}
    for setting in SETTINGS:
        if setting.env_var in environ:
            found[setting.name] = environ[setting.env_var]
    return found


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per setting to ``parser``."""
    parser.add_argument(
        "--config",
        type=Path,
        help=f"TOML settings file (also {ENV_PREFIX}CONFIG).",
    )
    for setting in SETTINGS:
        unit = f" Unit: {setting.unit}." if setting.unit else ""
        parser.add_argument(
            setting.flag,
            dest="setting:" + setting.name,
            metavar=setting.name.split(".")[-1].upper(),
            help=f"{setting.help}{unit} Default: {setting.default}.",
        )


def load(
    arguments: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting from defaults, file, environment and flags.

    Raises:
        SettingsError: a key is unknown or a value is malformed.
    """
    environ = os.environ if environ is None else environ
    values = {setting.name: setting.default for setting in SETTINGS}
    sources = {setting.name: "default" for setting in SETTINGS}

    config_path = getattr(arguments, "config", None) or environ.get(
        ENV_PREFIX + "CONFIG"
    )
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_path:
        layers.append((f"file {config_path}", read_file(Path(config_path))))
    layers.append(("environment", read_environment(environ)))
    layers.append(("flag", _read_flags(arguments)))

    for source, raw_values in layers:
        for name, raw in raw_values.items():
            setting = _BY_NAME[name]
            label = setting.env_var if source == "environment" else source
            if source == "flag":
                label = f"flag {setting.flag}"
            values[name] = convert(setting, raw, label)
            sources[name] = label

    _check_tls_files(values)
    return Settings(values=values, sources=sources)


def _read_flags(arguments: argparse.Namespace | None) -> dict[str, Any]:
    if arguments is None:
        return {}
    found = {}
    for key, value in vars(arguments).items():
        if key.startswith("setting:") and value is not None:
            found[key.removeprefix("setting:")] = value
    return found


def _check_tls_files(values: Mapping[str, Any]) -> None:
    if values["tls.mode"] != "files":
        return
    for name in ("tls.cert_file", "tls.key_file"):
        if not values[name]:
            raise SettingsError(
                f"setting {name!r} is empty but tls.mode is 'files': set it "
                "to a PEM file, or choose tls.mode 'internal'"
            )
