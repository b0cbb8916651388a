"""Endpoints about the daemon itself: health and the CA certificate."""

from __future__ import annotations

from aiohttp import web

from zenpro_local.api import models
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError
from zenpro_local.api.routing import QueryParam, route
from zenpro_local.proxy import TLS_PERMISSION_PATH


@route(
    "GET",
    "/health",
    summary="Liveness: 200 while the daemon serves requests",
    tag="system",
    response=models.Health,
    public=True,
)
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@route(
    "GET",
    "/api/v1/ca.pem",
    summary="The certificate of the daemon's CA, for clients to trust",
    tag="system",
    public=True,
    errors=(404,),
    content_type="application/x-pem-file",
)
async def ca_certificate(request: web.Request) -> web.Response:
    ca_pem = context(request).ca_pem
    if ca_pem is None:
        raise ApiError(
            404, "this daemon has no CA of its own: tls.mode is not 'internal'"
        )
    return web.Response(
        body=ca_pem,
        content_type="application/x-pem-file",
        headers={"Content-Disposition": 'attachment; filename="zenpro-local-ca.pem"'},
    )


@route(
    "GET",
    TLS_PERMISSION_PATH,
    summary="Whether Caddy may obtain a certificate for a host (tls.mode acme)",
    tag="system",
    public=True,
    query=(QueryParam("domain", "string", "The host name.", required=True),),
    errors=(404,),
)
async def tls_permission(request: web.Request) -> web.Response:
    proxy = context(request).proxy
    domain = request.query.get("domain", "")
    if proxy is None or not proxy.allows_certificate(domain):
        raise ApiError(404, f"no tenant or admin host is named {domain!r}")
    return web.json_response({"domain": domain, "allowed": True})
