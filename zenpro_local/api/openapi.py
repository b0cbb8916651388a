"""The OpenAPI 3.1 document, built from the declared operations, and /docs.

Swagger UI's assets come from the swagger-ui-bundle package and are served
by the daemon, so /docs works without a network.
"""

from __future__ import annotations

import re
from functools import lru_cache

import swagger_ui_bundle
from aiohttp import web
from pydantic.json_schema import models_json_schema

import zenpro_local
from zenpro_local.api.routing import OPERATIONS, Operation, route

_PATH_PARAMETER = re.compile(r"{(\w+)}")
_REF_TEMPLATE = "#/components/schemas/{model}"

_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>zenpro-local admin API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-init.js"></script>
</body>
</html>
"""

_DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  persistAuthorization: true
});
"""


def _error_schema() -> dict:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "field"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"]},
                },
            }
        },
    }


def _parameters(operation: Operation) -> list[dict]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAMETER.findall(operation.path)
    ]
    for param in operation.query:
        schema: dict = {"type": param.type}
        if param.default is not None:
            schema["default"] = param.default
        if param.minimum is not None:
            schema["minimum"] = param.minimum
        if param.maximum is not None:
            schema["maximum"] = param.maximum
        parameters.append(
            {
                "name": param.name,
                "in": "query",
                "required": param.required,
                "description": param.description,
                "schema": schema,
            }
        )
    return parameters


def _success(operation: Operation) -> dict:
    if operation.status == 204:
        return {"description": "Done; no body."}
    if 300 <= operation.status < 400:
        # aiohttp's redirects carry a short text/plain body; clients follow
        # the Location header.
        return {
            "description": "Redirect.",
            "headers": {"Location": {"schema": {"type": "string"}}},
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    if operation.response is None:
        content = {operation.content_type: {"schema": {}}}
    else:
        ref = _REF_TEMPLATE.format(model=_schema_name(operation.response))
        content = {operation.content_type: {"schema": {"$ref": ref}}}
    return {"description": "Success.", "content": content}


def _schema_name(model: type) -> str:
    return model.__name__.replace("[", "_").replace("]", "_").replace(".", "_")


# Every operation that needs an API key may return these: 401 for missing or
# invalid credentials, 429 once an address has failed too often.
_AUTHENTICATION_ERRORS = (401, 429)
# aiohttp rejects a request it cannot parse before any handler runs, with a
# text/plain 400: a request line or header over 8190 bytes, or too many
# headers (aiohttp 3.14's defaults).
_PARSER_ERROR_DESCRIPTION = (
    "Error. A request the HTTP parser rejects (a request line or header over "
    "8190 bytes, too many headers) gets a text/plain 400."
)
_RETRY_AFTER = {
    "description": "Seconds until the address may try to authenticate again.",
    "schema": {"type": "integer", "minimum": 1},
}


def _responses(operation: Operation) -> dict:
    responses = {str(operation.status): _success(operation)}
    errors = set(operation.errors)
    if not operation.public:
        errors.update(_AUTHENTICATION_ERRORS)
    for status in sorted(errors):
        responses[str(status)] = {
            "description": "Error.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
            },
        }
    if "429" in responses:
        responses["429"]["headers"] = {"Retry-After": _RETRY_AFTER}

    bad_request = responses.setdefault("400", {"description": "", "content": {}})
    bad_request["description"] = _PARSER_ERROR_DESCRIPTION
    bad_request["content"]["text/plain"] = {"schema": {"type": "string"}}
    return responses


def _operation_object(operation: Operation) -> dict:
    document = {
        "summary": operation.summary,
        "operationId": operation.handler.__name__,
        "tags": [operation.tag],
        "parameters": _parameters(operation),
        "responses": _responses(operation),
    }
    if operation.body is not None:
        ref = _REF_TEMPLATE.format(model=_schema_name(operation.body))
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": ref}}},
        }
    if operation.public:
        document["security"] = []
    return document


@lru_cache(maxsize=1)
def build_document() -> dict:
    """Return the OpenAPI document for every declared operation."""
    model_types = {
        model
        for operation in OPERATIONS
        for model in (operation.body, operation.response)
        if model is not None
    }
    _, schemas = models_json_schema(
        [(model, "validation") for model in sorted(model_types, key=_schema_name)],
        ref_template=_REF_TEMPLATE,
    )
    components = {
        _schema_name_from_key(name): schema
        for name, schema in schemas.get("$defs", {}).items()
    }
    components["Error"] = _error_schema()

    paths: dict[str, dict] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method.lower()] = (
            _operation_object(operation)
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "zenpro-local admin API",
            "version": zenpro_local.__version__,
            "description": "Organizations, users, teams, roles, API keys and "
            "tenants of a zenpro-local daemon.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key: ZENPROKEY_...",
                }
            },
        },
        "security": [{"apiKey": []}],
    }


def _schema_name_from_key(key: str) -> str:
    return key.replace("[", "_").replace("]", "_").replace(".", "_")


@route(
    "GET",
    "/api/v1/openapi.json",
    summary="This API's OpenAPI document",
    tag="system",
    public=True,
)
async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(build_document())


@route("GET", "/docs", summary="Swagger UI", tag="system", public=True, content_type="text/html")
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_DOCS_PAGE, content_type="text/html")


@route(
    "GET",
    "/docs/swagger-init.js",
    summary="Swagger UI start-up script",
    tag="system",
    public=True,
    content_type="application/javascript",
)
async def docs_init(request: web.Request) -> web.Response:
    return web.Response(text=_DOCS_INIT, content_type="application/javascript")


def add_static(app: web.Application) -> None:
    """Serve Swagger UI's assets under /docs/assets."""
    app.router.add_static("/docs/assets", swagger_ui_bundle.swagger_ui_path)

