"""The baseline of the admin API benchmark: a bare aiohttp handler.

It serves ``GET /api/v1/tenants`` with bodies captured from the daemon,
chosen by the request's ``Authorization`` header, and does nothing else: no
middleware, no database, no authentication. The daemon's throughput is
reported as a fraction of this server's, measured in the same run with the
same load generator.

Usage: ``python bench/admin_bare_server.py PORT BODIES_JSON``, where
BODIES_JSON maps each ``Authorization`` header to a response body.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aiohttp import web

BODIES = web.AppKey("bodies", dict)


async def list_tenants(request: web.Request) -> web.Response:
    body = request.app[BODIES][request.headers.get("Authorization", "")]
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def main() -> None:
    port = int(sys.argv[1])
    bodies = json.loads(Path(sys.argv[2]).read_text())
    app = web.Application()
    app[BODIES] = {header: body.encode() for header, body in bodies.items()}
    app.router.add_get("/api/v1/tenants", list_tenants)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
