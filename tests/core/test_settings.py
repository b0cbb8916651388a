"""Settings: declared once, documented, layered, and strict about bad values."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import zenpro_local
from zenpro_local import config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "zenpro-local.toml"
EXAMPLE_SETTING = re.compile(r"^# ([a-z_]+) = (.+)$")
SETTING_NAMES = [setting.name for setting in config.SETTINGS]


def _load(args: list[str] | None = None, **environ: str) -> config.Settings:
    parser = argparse.ArgumentParser()
    config.add_flags(parser)
    return config.load(parser.parse_args(args or []), environ)


def _error(args: list[str] | None = None, **environ: str) -> str:
    with pytest.raises(config.SettingsError) as caught:
        _load(args, **environ)
    return str(caught.value)


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return str(path)


# Declarations


def test_setting_names_unique():
    assert len(set(SETTING_NAMES)) == len(SETTING_NAMES)
    env_vars = [setting.env_var for setting in config.SETTINGS]
    assert len(set(env_vars)) == len(env_vars)
    flags = [setting.flag for setting in config.SETTINGS]
    assert len(set(flags)) == len(flags)


@pytest.mark.parametrize("setting", config.SETTINGS, ids=SETTING_NAMES)
def test_setting_has_help(setting):
    assert setting.help.strip(), f"setting {setting.name!r} has no help text"
    assert setting.help[0].isupper(), setting.help
    assert setting.help.endswith("."), setting.help


@pytest.mark.parametrize("setting", config.SETTINGS, ids=SETTING_NAMES)
def test_setting_default_is_valid(setting):
    value = config.convert(setting, setting.default, "default")
    assert value == setting.default


def test_code_reads_declared_settings_only():
    reads = re.compile(r"settings\[\s*['\"]([^'\"]+)['\"]\s*\]")
    unknown = {}
    for path in Path(zenpro_local.__file__).parent.rglob("*.py"):
        for name in reads.findall(path.read_text()):
            if name not in SETTING_NAMES:
                unknown.setdefault(name, []).append(path.name)
    assert unknown == {}


# The example file


def _example_entries() -> dict[str, tuple[str, list[str]]]:
    """Return ``{setting name: (raw value, comment lines above it)}``."""
    entries = {}
    table = ""
    comments: list[str] = []
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            table = line[1:-1]
            comments = []
        elif not line.strip():
            comments = []
        elif match := EXAMPLE_SETTING.match(line):
            key, raw = match.groups()
            name = f"{table}.{key}" if table else key
            assert name not in entries, f"{name} appears twice in {EXAMPLE.name}"
            entries[name] = (raw, comments)
            comments = []
        elif line.startswith("#"):
            comments.append(line.removeprefix("#").strip())
    return entries


def test_example_lists_every_setting():
    entries = _example_entries()
    missing = [name for name in SETTING_NAMES if name not in entries]
    assert missing == [], f"add these settings to {EXAMPLE.name}"
    unknown = [name for name in entries if name not in SETTING_NAMES]
    assert unknown == [], f"remove these from {EXAMPLE.name}"


@pytest.mark.parametrize("setting", config.SETTINGS, ids=SETTING_NAMES)
def test_example_documents_setting(setting):
    entries = _example_entries()
    assert setting.name in entries, f"add {setting.name} to {EXAMPLE.name}"
    raw, comments = entries[setting.name]
    text = " ".join(comments)

    assert " ".join(setting.help.split()) in text
    assert "Default: " in text
    if setting.unit:
        assert f"Unit: {setting.unit}." in text
    for choice in setting.choices:
        assert choice in text

    value = tomllib.loads(f"value = {raw}")["value"]
    if setting.name == "data_dir":
        assert value == "~/.local/share/zenpro-local"
    else:
        assert value == setting.default


def test_example_default_data_dir(monkeypatch):
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    expected = os.path.expanduser("~/.local/share/zenpro-local")
    assert config._default_data_dir() == expected


def test_example_loads_as_is():
    settings = _load(ZENPRO_CONFIG=str(EXAMPLE))
    assert set(settings.sources.values()) == {"default"}


def test_example_uncommented_loads(tmp_path):
    lines = [
        line[2:] if EXAMPLE_SETTING.match(line) else line
        for line in EXAMPLE.read_text().splitlines()
    ]
    path = _write(tmp_path, "\n".join(lines))
    settings = _load(["--config", path])

    for setting in config.SETTINGS:
        assert settings.sources[setting.name] == f"file {path}"
        if setting.name != "data_dir":
            assert settings[setting.name] == setting.default
    assert settings.data_dir == Path("~/.local/share/zenpro-local").expanduser()


# Precedence


def test_precedence_file_env_flag(tmp_path):
    path = _write(tmp_path, "https_port = 8443\n[tls]\nmode = 'acme'\n")

    settings = _load()
    assert settings["https_port"] == 443
    assert settings.sources["https_port"] == "default"

    settings = _load(["--config", path])
    assert settings["https_port"] == 8443
    assert settings.sources["https_port"] == f"file {path}"
    assert settings["tls.mode"] == "acme"

    settings = _load(["--config", path], ZENPRO_HTTPS_PORT="9443")
    assert settings["https_port"] == 9443
    assert settings.sources["https_port"] == "ZENPRO_HTTPS_PORT"
    assert settings["tls.mode"] == "acme"

    settings = _load(
        ["--config", path, "--https-port", "10443", "--tls-mode", "internal"],
        ZENPRO_HTTPS_PORT="9443",
        ZENPRO_TLS_MODE="acme",
    )
    assert settings["https_port"] == 10443
    assert settings.sources["https_port"] == "flag --https-port"
    assert settings["tls.mode"] == "internal"
    assert settings.sources["tls.mode"] == "flag --tls-mode"


def test_config_flag_beats_env(tmp_path):
    from_env = _write(tmp_path, "https_port = 8443\n")
    from_flag = tmp_path / "other.toml"
    from_flag.write_text("https_port = 9443\n")

    assert _load(ZENPRO_CONFIG=from_env)["https_port"] == 8443
    settings = _load(["--config", str(from_flag)], ZENPRO_CONFIG=from_env)
    assert settings["https_port"] == 9443


def test_dotted_settings_from_env_and_flags():
    settings = _load(
        ["--tenants-memory-limit", "2048"],
        ZENPRO_TENANTS_ZENML_VERSION="0.99.1",
        ZENPRO_CADDY_BIND="127.0.0.1",
    )
    assert settings["tenants.memory_limit"] == 2048
    assert settings["tenants.zenml_version"] == "0.99.1"
    assert settings.sources["tenants.zenml_version"] == "ZENPRO_TENANTS_ZENML_VERSION"
    assert settings["caddy.bind"] == "127.0.0.1"


def test_types_converted():
    settings = _load(
        ZENPRO_MAX_BODY_SIZE="2048",
        ZENPRO_RECONCILE_INTERVAL="2",
        ZENPRO_TENANTS_CPU_LIMIT="0.5",
    )
    assert settings["max_body_size"] == 2048
    assert settings["reconcile_interval"] == 2.0
    assert isinstance(settings["reconcile_interval"], float)
    assert settings["tenants.cpu_limit"] == 0.5


# Errors: each names the setting, the value, its source and the fix.

FILE_ERRORS = [
    ("colour = 'blue'\n", ["'colour'", "remove it", "zenpro-local settings"]),
    ("[tls]\nmod = 'acme'\n", ["'tls.mod'", "remove it"]),
    ("tls = 'acme'\n", ["'tls'", "remove it"]),
    ("https_port = 'many'\n", ["'many'", "'https_port'", "expected an integer"]),
    ("https_port = true\n", ["True", "'https_port'", "expected an integer"]),
    ("max_body_size = 1.5\n", ["1.5", "'max_body_size'", "expected an integer"]),
    ("reconcile_interval = 'soon'\n", ["'soon'", "expected a number"]),
    ("reconcile_interval = inf\n", ["inf", "'reconcile_interval'", "finite"]),
    ("listen = 8740\n", ["8740", "'listen'", "expected a string"]),
    ("data_dir = 5\n", ["5", "'data_dir'", "expected a path"]),
    ("runtime = 'kubernetes'\n", ["'kubernetes'", "auto, docker, process"]),
    ("[tenants]\nport_range = '30000-20000'\n", ["'30000-20000'", "FIRST < LAST"]),
    ("listen = 'localhost'\n", ["'localhost'", "HOST:PORT"]),
    ("https_port = 'not closed\n", ["is not TOML"]),
]


@pytest.mark.parametrize("text, fragments", FILE_ERRORS)
def test_file_error_names_key_value_fix(tmp_path, text, fragments):
    path = _write(tmp_path, text)
    message = _error(["--config", path])
    assert path in message
    for fragment in fragments:
        assert fragment in message


ENV_ERRORS = [
    ("ZENPRO_HTTPS_PORT", "abc", ["'abc'", "'https_port'", "expected an integer"]),
    ("ZENPRO_HTTPS_PORT", "70000", ["70000", "1 to 65535"]),
    ("ZENPRO_HTTPS_PORT", "0", ["'0'", "1 to 65535"]),
    ("ZENPRO_RUNTIME", "kubernetes", ["'kubernetes'", "auto, docker, process"]),
    ("ZENPRO_LOG_LEVEL", "INFO", ["'INFO'", "debug, info, warning, error"]),
    ("ZENPRO_MAX_BODY_SIZE", "-5", ["'-5'", "greater than 0"]),
    ("ZENPRO_RECONCILE_INTERVAL", "nan", ["'nan'", "finite"]),
    ("ZENPRO_HEALTH_INTERVAL", "inf", ["'inf'", "finite"]),
    ("ZENPRO_TLS_MODE", "files", ["'tls.cert_file'", "PEM file"]),
]


@pytest.mark.parametrize("name, value, fragments", ENV_ERRORS)
def test_env_error_names_key_value_fix(name, value, fragments):
    message = _error(**{name: value})
    if name != "ZENPRO_TLS_MODE":
        assert name in message
    for fragment in fragments:
        assert fragment in message


def test_flag_error_names_flag():
    message = _error(["--max-body-size", "big"])
    assert "'big'" in message
    assert "flag --max-body-size" in message
    assert "expected an integer" in message


def test_missing_config_file(tmp_path):
    path = str(tmp_path / "absent.toml")
    message = _error(["--config", path])
    assert path in message
    assert "not found" in message
    assert "--config" in message


# The settings command


def _run_cli(*args: str, env: dict[str, str] | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ZENPRO_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "zenpro_local", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=REPO,
        timeout=60,
    )


def test_settings_command_prints_every_setting(tmp_path):
    path = _write(tmp_path, "https_port = 8443\n")
    result = _run_cli(
        "settings",
        "--config",
        path,
        "--log-level",
        "debug",
        env={"ZENPRO_BASE_DOMAIN": "example.test"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == SETTING_NAMES

    by_name = {line.split()[0]: line for line in lines}
    assert "8443" in by_name["https_port"]
    assert f"(file {path})" in by_name["https_port"]
    assert "example.test" in by_name["base_domain"]
    assert "(ZENPRO_BASE_DOMAIN)" in by_name["base_domain"]
    assert "debug" in by_name["log_level"]
    assert "(flag --log-level)" in by_name["log_level"]
    assert "1048576 bytes" in by_name["max_body_size"]
    assert "(default)" in by_name["max_body_size"]


def test_settings_command_json():
    result = _run_cli("settings", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == SETTING_NAMES
    for row, setting in zip(rows, config.SETTINGS):
        assert row["help"] == setting.help
        assert row["unit"] == setting.unit
        assert row["source"] == "default"


@pytest.mark.parametrize("command", ["settings", "serve"])
def test_bad_setting_stops_command(tmp_path, command):
    path = _write(tmp_path, "colour = 'blue'\n")
    result = _run_cli(command, "--config", path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown setting 'colour'")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
