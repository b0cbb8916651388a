"""Dashboard sessions through the admin API: cookie, CSRF, sign-out, limits."""

from __future__ import annotations

from http.cookies import SimpleCookie

from zenpro_local.api.sessions import COOKIE_NAME, CSRF_HEADER

PASSWORD = "correct-horse-battery"


async def _create_user(daemon, username: str) -> dict:
    response = await daemon.call(
        "POST", "/api/v1/users", json={"username": username, "password": PASSWORD}
    )
    assert response.status == 201, response.body
    return response.body


async def _sign_in(daemon, body: dict) -> tuple[str, str]:
    """Sign in; return the session token from the cookie and the CSRF token."""
    response = await daemon.call("POST", "/api/v1/session", token=None, json=body)
    assert response.status == 201, response.body
    cookie = SimpleCookie(response.headers["Set-Cookie"])[COOKIE_NAME]
    return cookie.value, response.body["csrf_token"]


def _cookie(token: str) -> dict:
    return {"Cookie": f"{COOKIE_NAME}={token}"}


async def test_session_cookie_flags(daemon):
    await _create_user(daemon, "ada")
    response = await daemon.call(
        "POST",
        "/api/v1/session",
        token=None,
        json={"username": "ada", "password": PASSWORD},
    )
    assert response.status == 201, response.body
    cookie = SimpleCookie(response.headers["Set-Cookie"])[COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"] == "Strict"
    assert response.body["user"]["username"] == "ada"


async def test_session_token_stored_hashed(daemon):
    await _create_user(daemon, "ada")
    token, _ = await _sign_in(daemon, {"username": "ada", "password": PASSWORD})
    state = (daemon.data_dir / "state.db").read_bytes()
    assert token.encode() not in state


async def test_session_reads_need_no_csrf(daemon):
    await _create_user(daemon, "ada")
    token, csrf = await _sign_in(daemon, {"username": "ada", "password": PASSWORD})
    response = await daemon.call(
        "GET", "/api/v1/session", token=None, headers=_cookie(token)
    )
    assert response.status == 200, response.body
    assert response.body["csrf_token"] == csrf


async def test_session_writes_need_csrf(daemon):
    user = await _create_user(daemon, "ada")
    token, csrf = await _sign_in(daemon, {"username": "ada", "password": PASSWORD})
    path = f"/api/v1/users/{user['id']}/api_keys"

    missing = await daemon.call(
        "POST", path, token=None, json={"note": "x"}, headers=_cookie(token)
    )
    assert missing.status == 403
    assert missing.body["error"]["code"] == "csrf_failed"

    wrong = await daemon.call(
        "POST",
        path,
        token=None,
        json={"note": "x"},
        headers={**_cookie(token), CSRF_HEADER: "0" * 64},
    )
    assert wrong.status == 403

    right = await daemon.call(
        "POST",
        path,
        token=None,
        json={"note": "x"},
        headers={**_cookie(token), CSRF_HEADER: csrf},
    )
    assert right.status == 201, right.body


async def test_sign_out_ends_session(daemon):
    await _create_user(daemon, "ada")
    token, csrf = await _sign_in(daemon, {"username": "ada", "password": PASSWORD})

    forced = await daemon.call(
        "DELETE", "/api/v1/session", token=None, headers=_cookie(token)
    )
    assert forced.status == 403
    signed_out = await daemon.call(
        "DELETE",
        "/api/v1/session",
        token=None,
        headers={**_cookie(token), CSRF_HEADER: csrf},
    )
    assert signed_out.status == 204
    after = await daemon.call(
        "GET", "/api/v1/session", token=None, headers=_cookie(token)
    )
    assert after.status == 401


async def test_api_key_session_ends_on_revoke(daemon):
    user = await _create_user(daemon, "ada")
    key = await daemon.call(
        "POST", f"/api/v1/users/{user['id']}/api_keys", json={"note": "browser"}
    )
    assert key.status == 201, key.body
    token, _ = await _sign_in(daemon, {"api_key": key.body["key"]})
    before = await daemon.call(
        "GET", "/api/v1/session", token=None, headers=_cookie(token)
    )
    assert before.status == 200

    revoked = await daemon.call(
        "DELETE", f"/api/v1/users/{user['id']}/api_keys/{key.body['id']}"
    )
    assert revoked.status == 204
    after = await daemon.call(
        "GET", "/api/v1/session", token=None, headers=_cookie(token)
    )
    assert after.status == 401


async def test_sign_in_rejects_form_content_type(daemon):
    await _create_user(daemon, "ada")
    response = await daemon.call(
        "POST",
        "/api/v1/session",
        token=None,
        data="username=ada&password=" + PASSWORD,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 415


async def test_wrong_passwords_are_rate_limited(daemon):
    await _create_user(daemon, "ada")
    statuses = []
    for _ in range(30):
        response = await daemon.call(
            "POST",
            "/api/v1/session",
            token=None,
            json={"username": "ada", "password": "wrong-password"},
        )
        statuses.append(response.status)
        if response.status == 429:
            break
    assert statuses[0] == 401
    assert statuses[-1] == 429
    # Once limited, even the right password is not checked.
    right = await daemon.call(
        "POST",
        "/api/v1/session",
        token=None,
        json={"username": "ada", "password": PASSWORD},
    )
    assert right.status == 429


async def test_password_change_ends_other_sessions(daemon):
    user = await _create_user(daemon, "ada")
    old_token, _ = await _sign_in(daemon, {"username": "ada", "password": PASSWORD})
    token, csrf = await _sign_in(daemon, {"username": "ada", "password": PASSWORD})

    changed = await daemon.call(
        "PATCH",
        f"/api/v1/users/{user['id']}",
        token=None,
        json={"password": "new-horse-battery", "current_password": PASSWORD},
        headers={**_cookie(token), CSRF_HEADER: csrf},
    )
    old = await daemon.call(
        "GET", "/api/v1/session", token=None, headers=_cookie(old_token)
    )
    current = await daemon.call(
        "GET", "/api/v1/session", token=None, headers=_cookie(token)
    )

    assert changed.status == 200, changed.body
    assert old.status == 401, old.body
    assert current.status == 200, current.body


async def test_password_reset_by_admin_ends_sessions(daemon):
    user = await _create_user(daemon, "ada")
    token, _ = await _sign_in(daemon, {"username": "ada", "password": PASSWORD})

    changed = await daemon.call(
        "PATCH", f"/api/v1/users/{user['id']}", json={"password": "new-horse-battery"}
    )
    session = await daemon.call(
        "GET", "/api/v1/session", token=None, headers=_cookie(token)
    )

    assert changed.status == 200, changed.body
    assert session.status == 401, session.body


async def test_own_password_change_needs_current(daemon):
    user = await _create_user(daemon, "ada")
    token, csrf = await _sign_in(daemon, {"username": "ada", "password": PASSWORD})
    headers = {**_cookie(token), CSRF_HEADER: csrf}
    path = f"/api/v1/users/{user['id']}"

    missing = await daemon.call(
        "PATCH", path, token=None, json={"password": "new-horse"}, headers=headers
    )
    wrong = await daemon.call(
        "PATCH",
        path,
        token=None,
        json={"password": "new-horse", "current_password": "guess-horse"},
        headers=headers,
    )
    old_still_works = await daemon.call(
        "POST",
        "/api/v1/session",
        token=None,
        json={"username": "ada", "password": PASSWORD},
    )

    assert missing.status == 422, missing.body
    assert missing.body["error"]["field"] == "current_password"
    assert wrong.status == 403, wrong.body
    assert old_still_works.status == 201, old_still_works.body
