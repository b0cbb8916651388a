"""The daemon's fixed points: health, docs, first-start admin token."""

import os
import stat


async def test_health_without_credentials(daemon):
    response = await daemon.call("GET", "/health", token=None)
    assert response.status == 200
    assert response.body == {"status": "ok"}


async def test_admin_token_file_is_private(daemon):
    path = daemon.data_dir / "admin-token"
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600
    assert daemon.admin_token.startswith("ZENPROKEY_")


async def test_admin_token_authenticates_admin(daemon):
    response = await daemon.call("GET", "/api/v1/users/me")
    assert response.status == 200
    assert response.body["username"] == "admin"
    assert response.body["is_superuser"] is True


async def test_openapi_document_lists_routes(daemon):
    response = await daemon.call("GET", "/api/v1/openapi.json", token=None)
    assert response.status == 200
    assert response.body["openapi"].startswith("3.")
    assert "/api/v1/organizations" in response.body["paths"]
    assert "/api/v1/tenants/{tenant_id}" in response.body["paths"]


async def test_docs_served_offline(daemon):
    page = await daemon.call("GET", "/docs", token=None)
    assert page.status == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.body
    asset = await daemon.call("GET", "/docs/assets/swagger-ui-bundle.js", token=None)
    assert asset.status == 200
