"""Schemathesis against the daemon's own OpenAPI document.

The document is fetched from the running daemon. Every operation gets
generated requests, valid and invalid, sent as the superuser. No response
may be a 5xx, and each must match what the document declares for the
operation: status code, content type, headers and body schema.

Generation is derandomized, so a run in CI sends the same requests every
time. To explore further, raise ``ZENPRO_SCHEMA_EXAMPLES`` (examples per
operation and mode, 12 by default).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from zenpro_local.api.openapi import build_document
from zenpro_local.api.routing import MAX_LIMIT, MAX_OFFSET

# With about 50 operations, 12 examples each take 10 to 30 s on two cores.
MAX_EXAMPLES = int(os.environ.get("ZENPRO_SCHEMA_EXAMPLES", "12"))

# Schemathesis leaves out the operation that serves the document it loaded,
# GET /api/v1/openapi.json, so it is compared as a whole instead.
DOCUMENT_PATH = "/api/v1/openapi.json"


def _cases() -> list[tuple[str, str, GenerationMode]]:
    """Return every operation with positive data, and with negative data too
    when it has parameters or a body to make invalid."""
    cases = []
    for path, methods in build_document()["paths"].items():
        for method, operation in methods.items():
            if path == DOCUMENT_PATH:
                continue
            modes = [GenerationMode.POSITIVE]
            if operation["parameters"] or "requestBody" in operation:
                modes.append(GenerationMode.NEGATIVE)
            cases.extend((method.upper(), path, mode) for mode in modes)
    return cases


@pytest.fixture(scope="module")
def live_schema(threaded_daemon):
    schema = schemathesis.openapi.from_url(threaded_daemon.url + DOCUMENT_PATH)
    # The daemon ignores undeclared query parameters, as the OpenAPI document
    # allows, so Schemathesis must not count them as invalid data.
    schema.config.generation.update(allow_extra_parameters=False)
    return schema


def test_served_document_is_built_one(live_schema):
    assert live_schema.raw_schema == build_document()


@pytest.mark.parametrize("method, path, mode", _cases())
def test_operation_matches_schema(threaded_daemon, live_schema, method, path, mode):
    operation = live_schema[path][method]
    headers = {"Authorization": f"Bearer {threaded_daemon.admin_token}"}

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(base_url=threaded_daemon.url, headers=headers)

    try:
        check()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        pytest.skip("Schemathesis finds no way to make this request invalid")


def _get(threaded_daemon, path: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        threaded_daemon.url + path,
        headers={"Authorization": f"Bearer {threaded_daemon.admin_token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.parametrize(
    "query, field",
    [
        ("offset=", "offset"),
        ("limit=", "limit"),
        ("include_deleted=", "include_deleted"),
        (f"offset={MAX_OFFSET + 1}", "offset"),
        (f"limit={MAX_LIMIT + 1}", "limit"),
    ],
)
def test_invalid_query_value_rejected(threaded_daemon, query, field):
    status, body = _get(threaded_daemon, f"/api/v1/tenants?{query}")

    assert status == 422, body
    assert body["error"]["field"] == field


def test_documented_bounds_accepted(threaded_daemon):
    status, body = _get(
        threaded_daemon, f"/api/v1/tenants?offset={MAX_OFFSET}&limit={MAX_LIMIT}"
    )

    assert status == 200, body
    assert body["offset"] == MAX_OFFSET
