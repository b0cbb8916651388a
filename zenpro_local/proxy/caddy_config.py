"""Render the Caddy configuration the daemon wants, and merge it into Caddy's.

Layout of the daemon's part of Caddy's configuration (JSON)::

    apps.http.servers.<server_name>            HTTPS listener
      routes[]                                 in this order:
        @id zenpro-admin       admin.<base_domain> -> the daemon's admin API
        @id zenpro-tenants     *.<base_domain>: one map handler,
                               tenant label -> upstream, revision, reason
          mappings[]           one entry per tenant, @id zenpro-tenant-<label>
        ...                    routes of others, left as they are
        @id zenpro-catch-all   404 for every other host, always last
    apps.http.servers.<server_name>-http       optional HTTP -> HTTPS redirect
    apps.tls.certificates.load_files[]         @id zenpro-certificate

Tenants are entries of one map handler rather than one Caddy route each.
Caddy decodes, indexes and provisions its whole configuration again on every
change, so the time of each change grows with the configuration's size in
bytes. A map entry costs it less than half of what a route with its own
``reverse_proxy`` handler costs, and the entries carry no more than they
must: the tenant's label (not its whole host name) as input and ``@id``, and
three outputs. A known host has a revision, and an available one also has
an upstream. docs/performance.md has the figures. Each entry still has its
own ``@id``, so one tenant is added, replaced or removed with one small
request.

Caddy replaces ``{placeholders}`` in map outputs and in static response
bodies, so text that comes from outside (a tenant's unavailability reason)
never reaches those fields with a raw brace in it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from zenpro_local.pki import CertificatePaths
from zenpro_local.proxy.routes import Route, RouteState
from zenpro_local.proxy.settings import ProxySettings, TLSMode

ID_PREFIX = "zenpro-"
TENANT_ID_PREFIX = "zenpro-tenant-"
ADMIN_ROUTE_ID = "zenpro-admin"
TENANTS_ROUTE_ID = "zenpro-tenants"
CATCH_ALL_ROUTE_ID = "zenpro-catch-all"
REDIRECT_ROUTE_ID = "zenpro-http-redirect"
CERTIFICATE_ID = "zenpro-certificate"
ACME_POLICY_ID = "zenpro-acme"
CERTIFICATE_TAG = "zenpro-local"

# Caddy serves this path itself on every host the daemon routes, with the
# route's revision, so a probe can tell which version of the route is live.
PROBE_PATH = "/.well-known/zenpro-local/route"
# Path of the daemon's endpoint that Caddy requests in ``acme`` mode before
# it obtains a certificate. ``GET <path>?domain=<host>`` returns 200 for a
# tenant or admin host, and 404 otherwise.
TLS_PERMISSION_PATH = "/api/v1/tls/permission"
# Admin API path of the tenant map's entries.
MAPPINGS_PATH = f"/id/{TENANTS_ROUTE_ID}/handle/0/mappings"

# Map destinations, in the order of each entry's outputs. Entries stay small
# on purpose: Caddy's cost per change grows with the size of its whole
# configuration, so the tenant id and state are left out. The revision hash
# covers both, and an empty upstream means the tenant is unavailable.
_DESTINATIONS = ("upstream", "revision", "reason")
_JSON_HEADERS = {
    "Content-Type": ["application/json"],
    "Cache-Control": ["no-store"],
}


def tenant_label(host: str) -> str:
    """Return the first label of a tenant's host name, the map's input."""
    return host.partition(".")[0]


def render_mapping(route: Route) -> dict[str, Any]:
    """Return the tenant map entry for ``route``.

    The route's host must be one label under the base domain, as
    :class:`~zenpro_local.proxy.Proxy` checks.
    """
    label = tenant_label(route.host)
    reason = _json_string_content(route.reason)
    # Caddy proxies every entry with an upstream.
    upstream = route.upstream if route.state is RouteState.AVAILABLE else ""
    return {
        "@id": f"{TENANT_ID_PREFIX}{label}",
        "input": label,
        "outputs": [upstream, route.revision, reason],
    }


def render_mappings(routes: list[Route]) -> list[dict[str, Any]]:
    """Return the map entries of ``routes``, sorted by host."""
    ordered = sorted(routes, key=lambda route: route.host)
    return [render_mapping(route) for route in ordered]


def find_mappings(config: dict[str, Any] | None, server_name: str) -> list | None:
    """Return the tenant map's entries in a Caddy configuration, if present."""
    servers = ((config or {}).get("apps") or {}).get("http", {}).get("servers", {})
    for route in (servers.get(server_name) or {}).get("routes", []):
        if route.get("@id") == TENANTS_ROUTE_ID:
            handlers = route.get("handle") or [{}]
            return handlers[0].get("mappings")
    return None


@dataclass
class DesiredConfig:
    """The daemon's part of Caddy's configuration.

    Attributes:
        owns_caddy: True for the embedded Caddy, whose top-level settings
            (admin endpoint, storage, logging) the daemon sets too.
        admin_if_missing: ``admin`` settings to add to an external Caddy's
            configuration that has none (an empty one), because Caddy would
            otherwise move its admin endpoint to its default address.
        top_level: Top-level keys set when the daemon owns Caddy.
        http_app: Keys of ``apps.http``; set when the daemon owns Caddy, else
            only added where missing.
        servers: The daemon's servers by name.
        certificates: The daemon's ``load_files`` entries.
        acme_policy: The daemon's TLS automation policy in ``acme`` mode.
        on_demand: ``apps.tls.automation.on_demand`` in ``acme`` mode.
        pki: ``apps.pki`` when the daemon owns Caddy.
    """

    owns_caddy: bool
    admin_if_missing: dict[str, Any] | None = None
    top_level: dict[str, Any] = field(default_factory=dict)
    http_app: dict[str, Any] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    certificates: list[dict[str, Any]] = field(default_factory=list)
    acme_policy: dict[str, Any] | None = None
    on_demand: dict[str, Any] | None = None
    pki: dict[str, Any] | None = None


def render_desired(
    settings: ProxySettings,
    routes: list[Route],
    certificate: CertificatePaths | None,
    admin_listen: str,
    owns_caddy: bool,
) -> DesiredConfig:
    """Return the configuration the daemon wants in Caddy.

    Args:
        settings: The proxy settings.
        routes: Every tenant route.
        certificate: Certificate files to load; None in ``acme`` mode.
        admin_listen: Caddy's admin address, in Caddy's syntax.
        owns_caddy: True for the embedded Caddy. An external Caddy keeps its
            own top-level and app-wide settings.
    """
    desired = DesiredConfig(owns_caddy=owns_caddy)
    desired.admin_if_missing = {"listen": admin_listen}
    desired.http_app = {"grace_period": _duration(settings.grace_period)}
    desired.servers[settings.server_name] = _https_server(settings, routes)
    if settings.http_port is not None:
        desired.servers[f"{settings.server_name}-http"] = _redirect_server(settings)

    if certificate is not None:
        desired.certificates.append(
            {
                "@id": CERTIFICATE_ID,
                "certificate": str(certificate.certificate),
                "key": str(certificate.key),
                "tags": [CERTIFICATE_TAG],
            }
        )
    if settings.tls_mode is TLSMode.ACME:
        desired.acme_policy, desired.on_demand = _acme_automation(settings)

    if owns_caddy:
        desired.top_level = _embedded_top_level(settings, admin_listen)
        desired.http_app["https_port"] = settings.https_port
        if settings.http_port is not None:
            desired.http_app["http_port"] = settings.http_port
        # Caddy's local CA is unused here; never let it touch the system's
        # trust store.
        desired.pki = {"certificate_authorities": {"local": {"install_trust": False}}}
    return desired


def merge_config(
    current: dict[str, Any] | None, desired: DesiredConfig
) -> dict[str, Any]:
    """Return Caddy's configuration with the daemon's part put in place.

    Everything without the daemon's ``@id`` prefix stays as it is: other
    servers, other routes in the daemon's server (in their order), other
    certificates and automation policies. The daemon's routes keep their
    positions; missing ones go first, and the catch-all route always goes
    last. The input is not modified.
    """
    config = copy.deepcopy(current) if current else {}
    if desired.owns_caddy:
        config.update(copy.deepcopy(desired.top_level))
    elif "admin" not in config and desired.admin_if_missing is not None:
        config["admin"] = copy.deepcopy(desired.admin_if_missing)
    apps = config.setdefault("apps", {})

    http_app = apps.setdefault("http", {})
    for key, value in desired.http_app.items():
        if desired.owns_caddy:
            http_app[key] = value
        else:
            http_app.setdefault(key, value)
    servers = http_app.setdefault("servers", {})
    for name, server in desired.servers.items():
        servers[name] = _merge_server(servers.get(name), server)

    _merge_tls(apps, desired)
    if desired.pki is not None:
        apps["pki"] = copy.deepcopy(desired.pki)
    return config


def _merge_server(
    current: dict[str, Any] | None, desired: dict[str, Any]
) -> dict[str, Any]:
    if current is None:
        return copy.deepcopy(desired)
    merged = {**current, **copy.deepcopy(desired)}
    merged["routes"] = _merge_routes(current.get("routes", []), desired["routes"])
    return merged


def _merge_routes(
    current: list[dict[str, Any]], desired: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    desired_by_id = {route["@id"]: route for route in desired}
    merged = []
    placed = set()
    for route in current:
        route_id = route.get("@id", "")
        if route_id in desired_by_id and route_id != CATCH_ALL_ROUTE_ID:
            merged.append(copy.deepcopy(desired_by_id[route_id]))
            placed.add(route_id)
        elif not route_id.startswith(ID_PREFIX):
            merged.append(route)
        # Any other route with the daemon's prefix is stale and dropped.

    missing = [
        copy.deepcopy(route)
        for route in desired
        if route["@id"] not in placed and route["@id"] != CATCH_ALL_ROUTE_ID
    ]
    merged = missing + merged
    if CATCH_ALL_ROUTE_ID in desired_by_id:
        merged.append(copy.deepcopy(desired_by_id[CATCH_ALL_ROUTE_ID]))
    return merged


def _merge_tls(apps: dict[str, Any], desired: DesiredConfig) -> None:
    tls = apps.get("tls", {})
    certificates = tls.get("certificates", {})
    load_files = [
        entry for entry in certificates.get("load_files", []) if not _is_ours(entry)
    ]
    load_files += copy.deepcopy(desired.certificates)
    if load_files:
        certificates["load_files"] = load_files
    else:
        certificates.pop("load_files", None)
    if certificates:
        tls["certificates"] = certificates
    else:
        tls.pop("certificates", None)

    automation = tls.get("automation", {})
    policies = [
        policy for policy in automation.get("policies", []) if not _is_ours(policy)
    ]
    if desired.acme_policy is not None:
        # The first matching policy wins, so the daemon's goes first.
        policies.insert(0, copy.deepcopy(desired.acme_policy))
        automation["on_demand"] = copy.deepcopy(desired.on_demand)
    if policies:
        automation["policies"] = policies
    else:
        automation.pop("policies", None)
    if automation:
        tls["automation"] = automation
    else:
        tls.pop("automation", None)

    if tls:
        apps["tls"] = tls
    else:
        apps.pop("tls", None)


def _is_ours(entry: Any) -> bool:
    return isinstance(entry, dict) and str(entry.get("@id", "")).startswith(ID_PREFIX)


def _https_server(settings: ProxySettings, routes: list[Route]) -> dict[str, Any]:
    server: dict[str, Any] = {
        "listen": [_listen(settings.bind_address, settings.https_port)],
        # HTTP/3 would need a UDP listener too; HTTP/1.1 and 2 suffice.
        "protocols": ["h1", "h2"],
        "routes": [
            _admin_route(settings),
            _tenants_route(settings, routes),
            _catch_all_route(),
        ],
        "errors": {"routes": [_error_route()]},
    }
    if settings.tls_mode is TLSMode.ACME:
        # Caddy obtains certificates itself; the redirect server, if any, is
        # the daemon's own.
        server["automatic_https"] = {"disable_redirects": True}
    else:
        server["automatic_https"] = {"disable": True}
        server["tls_connection_policies"] = [
            {"certificate_selection": {"any_tag": [CERTIFICATE_TAG]}}
        ]
    return server


def _redirect_server(settings: ProxySettings) -> dict[str, Any]:
    port = "" if settings.https_port == 443 else f":{settings.https_port}"
    location = f"https://{{http.request.host}}{port}{{http.request.uri}}"
    redirect = {
        "@id": REDIRECT_ROUTE_ID,
        "handle": [
            {
                "handler": "static_response",
                "status_code": 308,
                "headers": {"Location": [location]},
            }
        ],
    }
    return {
        "listen": [_listen(settings.bind_address, settings.http_port)],
        "protocols": ["h1"],
        "automatic_https": {"disable": True},
        "routes": [redirect],
    }


def _admin_route(settings: ProxySettings) -> dict[str, Any]:
    probe = {
        "match": [{"path": [PROBE_PATH]}],
        "handle": [_json_response(200, {"route": "admin"})],
    }
    proxy = {"handle": [_reverse_proxy(settings, settings.admin_upstream)]}
    return {
        "@id": ADMIN_ROUTE_ID,
        "match": [{"host": [settings.admin_host]}],
        "handle": [{"handler": "subroute", "routes": [probe, proxy]}],
        "terminal": True,
    }


def _tenants_route(settings: ProxySettings, routes: list[Route]) -> dict[str, Any]:
    placeholders = {name: f"{{zenpro.{name}}}" for name in _DESTINATIONS}
    # Caddy numbers a host's labels from the right, so this is the label
    # left of the base domain. The host matcher's "*" is exactly one label.
    label = "{http.request.host.labels.%d}" % len(settings.base_domain.split("."))
    tenant_map = {
        "handler": "map",
        "source": label,
        "destinations": [placeholders[name] for name in _DESTINATIONS],
        "mappings": render_mappings(routes),
        "defaults": ["", "", ""],
    }
    no_upstream = {"vars": {placeholders["upstream"]: [""]}}
    no_revision = {"vars": {placeholders["revision"]: [""]}}
    available = {"not": [no_upstream]}
    unavailable = {**no_upstream, "not": [no_revision]}
    unavailable_body = {
        "error": "tenant_unavailable",
        "message": "This tenant is not available.",
        "host": "{http.request.host}",
        "reason": placeholders["reason"],
    }
    subroutes = [
        _probe_route(available, "available", placeholders["revision"]),
        _probe_route(unavailable, "unavailable", placeholders["revision"]),
        {
            "match": [available],
            "handle": [_reverse_proxy(settings, placeholders["upstream"])],
        },
        {
            "match": [unavailable],
            "handle": [
                _json_response(
                    503, unavailable_body, extra_headers={"Retry-After": ["30"]}
                )
            ],
        },
    ]
    # Hosts that are not in the map match no subroute and fall through to
    # the routes after this one.
    return {
        "@id": TENANTS_ROUTE_ID,
        "match": [{"host": [f"*.{settings.base_domain}"]}],
        "handle": [tenant_map, {"handler": "subroute", "routes": subroutes}],
    }


def _probe_route(match: dict[str, Any], state: str, revision: str) -> dict[str, Any]:
    body = {"route": "tenant", "revision": revision, "state": state}
    return {
        "match": [{**match, "path": [PROBE_PATH]}],
        "handle": [_json_response(200, body)],
    }


def _catch_all_route() -> dict[str, Any]:
    body = {"error": "not_found", "message": "No tenant has this host name."}
    return {"@id": CATCH_ALL_ROUTE_ID, "handle": [_json_response(404, body)]}


def _error_route() -> dict[str, Any]:
    # Errors raised by handlers, such as an upstream that refuses connections.
    body = {
        "error": "proxy_error",
        "message": "The server behind this host name did not answer.",
        "status": "{http.error.status_code}",
    }
    response = _json_response(0, body)
    response["status_code"] = "{http.error.status_code}"
    return {"handle": [response]}


def _reverse_proxy(settings: ProxySettings, dial: str) -> dict[str, Any]:
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": dial}],
        "transport": {"protocol": "http", "dial_timeout": "5s"},
        # Send each chunk on at once: streamed logs and long downloads must
        # not wait in a buffer.
        "flush_interval": -1,
        # Keep WebSockets open across reloads caused by other tenants.
        "stream_close_delay": _duration(settings.stream_close_delay),
    }


def _json_response(
    status: int,
    body: dict[str, str],
    extra_headers: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {**_JSON_HEADERS, **(extra_headers or {})},
        "body": _body_template(body),
    }


def _body_template(body: dict[str, str]) -> str:
    """Return ``body`` as JSON with literal braces escaped for Caddy.

    Values that are placeholders (``{zenpro.revision}``) stay placeholders,
    because Caddy must fill them in.
    """
    markers = {}
    plain = {}
    for key, value in body.items():
        if value.startswith("{") and value.endswith("}"):
            marker = f"@@placeholder-{len(markers)}@@"
            markers[marker] = value
            plain[key] = marker
        else:
            plain[key] = value
    text = json.dumps(plain).replace("{", "\\{").replace("}", "\\}")
    for marker, placeholder in markers.items():
        text = text.replace(marker, placeholder)
    return text


def _json_string_content(text: str) -> str:
    """Return ``text`` escaped for a JSON string, with no brace left in it."""
    escaped = json.dumps(text)[1:-1]
    return escaped.replace("{", "\\u007b").replace("}", "\\u007d")


def _embedded_top_level(settings: ProxySettings, admin_listen: str) -> dict[str, Any]:
    caddy_dir = settings.caddy_dir
    return {
        "admin": {"listen": admin_listen, "config": {"persist": True}},
        "storage": {"module": "file_system", "root": str(caddy_dir / "data")},
        "logging": {
            "logs": {
                "default": {
                    "level": "INFO",
                    "writer": {
                        "output": "file",
                        "filename": str(caddy_dir / "caddy.log"),
                        "roll_size_mb": 10,
                        "roll_keep": 3,
                    },
                }
            }
        },
    }


def _acme_automation(settings: ProxySettings) -> tuple[dict[str, Any], dict[str, Any]]:
    issuer: dict[str, Any] = {"module": "acme"}
    if settings.acme_email:
        issuer["email"] = settings.acme_email
    # Tenant hosts come and go without a configuration change, so Caddy
    # obtains their certificates on demand, at the first TLS handshake, after
    # asking the daemon whether the host is one of its tenants.
    policy = {
        "@id": ACME_POLICY_ID,
        "subjects": [f"*.{settings.base_domain}"],
        "issuers": [issuer],
        "on_demand": True,
    }
    permission_url = settings.acme_permission_url or (
        f"http://{settings.admin_upstream}{TLS_PERMISSION_PATH}"
    )
    on_demand = {"permission": {"module": "http", "endpoint": permission_url}}
    return policy, on_demand


def _listen(bind_address: str, port: int) -> str:
    if ":" in bind_address:
        return f"[{bind_address}]:{port}"
    return f"{bind_address}:{port}"


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"
