"""The rendered Caddy configuration and how it merges into Caddy's own."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import pytest

from zenpro_local.pki import CertificatePaths
from zenpro_local.proxy import ProxyError, ProxySettings, Route, TLSMode
from zenpro_local.proxy.caddy_admin import AdminAddress
from zenpro_local.proxy.caddy_config import (
    CATCH_ALL_ROUTE_ID,
    TENANTS_ROUTE_ID,
    TLS_PERMISSION_PATH,
    find_mappings,
    merge_config,
    render_desired,
    render_mapping,
)
from zenpro_local.proxy.caddy_process import find_caddy_binary
from zenpro_local.proxy.routes import RouteState

DOMAIN = "zp.example.com"
ADMIN_LISTEN = "unix//run/zp/admin.sock"


def settings(tmp_path, **overrides) -> ProxySettings:
    values = {"base_domain": DOMAIN, "data_dir": tmp_path, "https_port": 8443}
    values.update(overrides)
    return ProxySettings(**values)


def certificate(tmp_path) -> CertificatePaths:
    return CertificatePaths(tmp_path / "leaf.crt", tmp_path / "leaf.key")


def render(tmp_path, routes=(), owns_caddy=True, **overrides) -> dict:
    proxy_settings = settings(tmp_path, **overrides)
    paths = None if proxy_settings.tls_mode is TLSMode.ACME else certificate(tmp_path)
    desired = render_desired(
        proxy_settings, list(routes), paths, ADMIN_LISTEN, owns_caddy
    )
    return merge_config(None, desired)


def server_of(config: dict) -> dict:
    return config["apps"]["http"]["servers"]["zenpro-local"]


def route_ids(config: dict) -> list[str]:
    return [route.get("@id", "") for route in server_of(config)["routes"]]


def test_internal_mode_loads_leaf_from_files(tmp_path):
    config = render(tmp_path)

    load_files = config["apps"]["tls"]["certificates"]["load_files"]
    assert load_files == [
        {
            "@id": "zenpro-certificate",
            "certificate": str(tmp_path / "leaf.crt"),
            "key": str(tmp_path / "leaf.key"),
            "tags": ["zenpro-local"],
        }
    ]
    server = server_of(config)
    assert server["automatic_https"] == {"disable": True}
    assert server["tls_connection_policies"] == [
        {"certificate_selection": {"any_tag": ["zenpro-local"]}}
    ]
    assert "load_pem" not in json.dumps(config)


def test_acme_mode_obtains_certificates_on_demand(tmp_path):
    config = render(
        tmp_path,
        tls_mode=TLSMode.ACME,
        acme_email="ops@example.com",
        admin_upstream="127.0.0.1:8740",
    )

    tls = config["apps"]["tls"]
    assert "certificates" not in tls
    policy = tls["automation"]["policies"][0]
    assert policy["subjects"] == [f"*.{DOMAIN}"]
    assert policy["issuers"] == [{"module": "acme", "email": "ops@example.com"}]
    assert policy["on_demand"] is True
    assert tls["automation"]["on_demand"] == {
        "permission": {
            "module": "http",
            "endpoint": f"http://127.0.0.1:8740{TLS_PERMISSION_PATH}",
        }
    }
    server = server_of(config)
    assert "tls_connection_policies" not in server
    assert server["automatic_https"] == {"disable_redirects": True}


def test_acme_config_accepted_by_caddy(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("unshare is missing; it keeps 'caddy validate' off the network")
    config = render(tmp_path, tls_mode=TLSMode.ACME, acme_email="ops@example.com")
    config["storage"]["root"] = str(tmp_path / "storage")
    config["logging"]["logs"]["default"]["writer"] = {"output": "discard"}
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(config))

    # A network namespace of its own: whatever Caddy tries, nothing leaves
    # this machine.
    result = subprocess.run(
        [
            "unshare",
            "--net",
            str(find_caddy_binary()),
            "validate",
            "--config",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")},
    )
    if result.returncode != 0 and result.stderr.startswith("unshare:"):
        pytest.skip(f"unshare failed: {result.stderr.strip()}")

    assert result.returncode == 0, result.stderr


def test_internal_config_accepted_by_caddy(tmp_path):
    routes = [
        Route.available("t1", f"one.{DOMAIN}", "127.0.0.1:20001"),
        Route.unavailable("t2", f"two.{DOMAIN}", "stopped {now}"),
    ]
    config = render(tmp_path, routes, http_port=8080)
    del config["apps"]["tls"]
    config["storage"]["root"] = str(tmp_path / "storage")
    config["logging"]["logs"]["default"]["writer"] = {"output": "discard"}
    path = tmp_path / "internal.json"
    path.write_text(json.dumps(config))

    result = subprocess.run(
        [str(find_caddy_binary()), "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")},
    )

    assert result.returncode == 0, result.stderr


def test_routes_ordered_admin_tenants_catch_all(tmp_path):
    config = render(tmp_path)

    assert route_ids(config) == ["zenpro-admin", TENANTS_ROUTE_ID, CATCH_ALL_ROUTE_ID]


def test_embedded_caddy_never_installs_trust(tmp_path):
    config = render(tmp_path)

    local_ca = config["apps"]["pki"]["certificate_authorities"]["local"]
    assert local_ca == {"install_trust": False}
    assert config["admin"]["listen"] == ADMIN_LISTEN


def test_external_caddy_settings_untouched(tmp_path):
    current = {
        "admin": {"listen": "localhost:2019"},
        "storage": {"module": "file_system", "root": "/var/lib/caddy"},
        "apps": {"http": {"grace_period": "1m", "servers": {}}},
    }
    desired = render_desired(
        settings(tmp_path), [], certificate(tmp_path), ADMIN_LISTEN, False
    )

    merged = merge_config(current, desired)

    assert merged["admin"] == current["admin"]
    assert merged["storage"] == current["storage"]
    assert merged["apps"]["http"]["grace_period"] == "1m"
    assert "pki" not in merged["apps"]
    assert "logging" not in merged


def test_empty_external_caddy_keeps_admin_address(tmp_path):
    desired = render_desired(
        settings(tmp_path), [], certificate(tmp_path), ADMIN_LISTEN, False
    )

    merged = merge_config(None, desired)

    assert merged["admin"] == {"listen": ADMIN_LISTEN}
    assert merged["apps"]["http"]["grace_period"] == "30s"


def test_merge_keeps_foreign_routes_in_order(tmp_path):
    proxy_settings = settings(tmp_path)
    routes = [Route.available("t1", f"one.{DOMAIN}", "127.0.0.1:20001")]
    desired = render_desired(
        proxy_settings, routes, certificate(tmp_path), ADMIN_LISTEN, True
    )
    current = merge_config(None, desired)
    server = server_of(current)
    first = {"@id": "maintenance", "handle": []}
    second = {"match": [{"host": ["blog.example.com"]}], "handle": []}
    stale = {"@id": "zenpro-old-route", "handle": []}
    server["routes"] = (
        [first] + server["routes"][:2] + [second, stale] + server["routes"][2:]
    )
    server["routes"].append({"@id": "after-catch-all", "handle": []})

    merged = merge_config(current, desired)

    assert route_ids(merged) == [
        "maintenance",
        "zenpro-admin",
        TENANTS_ROUTE_ID,
        "",
        "after-catch-all",
        CATCH_ALL_ROUTE_ID,
    ]


def test_merge_keeps_foreign_servers_and_certificates(tmp_path):
    current = {
        "apps": {
            "http": {"servers": {"blog": {"listen": [":443"], "routes": []}}},
            "tls": {
                "certificates": {
                    "load_files": [
                        {"certificate": "/etc/blog.crt", "key": "/etc/blog.key"}
                    ]
                }
            },
        }
    }
    desired = render_desired(
        settings(tmp_path), [], certificate(tmp_path), ADMIN_LISTEN, False
    )

    merged = merge_config(current, desired)

    assert merged["apps"]["http"]["servers"]["blog"] == {
        "listen": [":443"],
        "routes": [],
    }
    load_files = merged["apps"]["tls"]["certificates"]["load_files"]
    assert load_files[0] == {"certificate": "/etc/blog.crt", "key": "/etc/blog.key"}
    assert load_files[1]["@id"] == "zenpro-certificate"


def test_merge_idempotent_and_pure(tmp_path):
    routes = [Route.available("t1", f"one.{DOMAIN}", "127.0.0.1:20001")]
    desired = render_desired(
        settings(tmp_path), routes, certificate(tmp_path), ADMIN_LISTEN, True
    )
    current = {"apps": {"http": {"servers": {"blog": {"routes": []}}}}}
    snapshot = copy.deepcopy(current)

    once = merge_config(current, desired)
    twice = merge_config(once, desired)

    assert once == twice
    assert current == snapshot


def test_mapping_reason_has_no_braces(tmp_path):
    route = Route.unavailable("t1", f"one.{DOMAIN}", 'use {http.request.uri} "now"')

    entry = render_mapping(route)

    reason = entry["outputs"][2]
    assert "{" not in reason
    assert "}" not in reason
    assert json.loads(f'"{reason}"') == route.reason


def test_unavailable_mapping_has_no_upstream():
    route = Route("t1", f"one.{DOMAIN}", "127.0.0.1:20001", RouteState.UNAVAILABLE)

    entry = render_mapping(route)

    assert entry["outputs"][0] == ""
    assert entry["input"] == "one"
    assert entry["@id"] == "zenpro-tenant-one"


def test_find_mappings_in_rendered_config(tmp_path):
    routes = [Route.available("t1", f"one.{DOMAIN}", "127.0.0.1:20001")]

    config = render(tmp_path, routes)

    assert find_mappings(config, "zenpro-local") == [render_mapping(routes[0])]
    assert find_mappings(None, "zenpro-local") is None


def test_files_mode_needs_both_files(tmp_path):
    with pytest.raises(ProxyError, match="certificate_file"):
        settings(tmp_path, tls_mode=TLSMode.FILES)


def test_bind_address_must_be_ip(tmp_path):
    with pytest.raises(ProxyError, match="Invalid bind_address 'localhost'"):
        settings(tmp_path, bind_address="localhost")


def test_internal_mode_rejects_single_label_domain(tmp_path):
    with pytest.raises(ProxyError, match="two labels"):
        settings(tmp_path, base_domain="localhost")


@pytest.mark.parametrize(
    "address",
    ["10.0.0.5:2019", "caddy.example.com:2019", "http://192.168.1.2:2019"],
)
def test_remote_admin_address_rejected(address):
    with pytest.raises(ProxyError, match="not a loopback address"):
        AdminAddress.parse(address)


@pytest.mark.parametrize(
    ("address", "listen"),
    [
        ("unix//run/caddy/admin.sock", "unix//run/caddy/admin.sock"),
        ("unix//run/caddy/admin.sock|0660", "unix//run/caddy/admin.sock"),
        ("localhost:2019", "localhost:2019"),
        ("http://127.0.0.1:2019/", "127.0.0.1:2019"),
        ("[::1]:2019", "[::1]:2019"),
    ],
)
def test_local_admin_address_parsed(address, listen):
    assert AdminAddress.parse(address).caddy_listen == listen


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("t 1", "one.zp.example.com", "127.0.0.1:1"), "Invalid tenant id"),
        (("t1", "One.zp.example.com", "127.0.0.1:1"), "Invalid host name"),
        (("t1", "one..zp.example.com", "127.0.0.1:1"), "Invalid host name"),
        (("t1", "one.zp.example.com", "127.0.0.1"), "expected HOST:PORT"),
        (("t1", "one.zp.example.com", "127.0.0.1:70000"), "expected HOST:PORT"),
        (("t1", "one.zp.example.com", "tenant.internal:8080"), "IP address"),
    ],
)
def test_route_validation(arguments, message):
    with pytest.raises(ValueError, match=message):
        Route.available(*arguments)


def test_route_revision_changes_with_fields():
    first = Route.available("t1", "one.zp.example.com", "127.0.0.1:1")
    same = Route.available("t1", "one.zp.example.com", "127.0.0.1:1")
    moved = Route.available("t1", "one.zp.example.com", "127.0.0.1:2")

    assert first.revision == same.revision
    assert first.revision != moved.revision
