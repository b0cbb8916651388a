"""The dashboard in a real headless Chromium, against a real daemon and tenant.

Each page is saved as a screenshot at laptop and phone widths under
``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as wait_for
from selenium.webdriver.support.ui import WebDriverWait

from tests.dashboard.conftest import LAPTOP, PHONE, screenshot, set_width
from tests.e2e.test_pipeline_on_tenant import run_pipeline

TENANT_TIMEOUT = 300
PAGE_TIMEOUT = 20
PASSWORD = "correct-horse-battery"


def find(driver, css: str, timeout: float = PAGE_TIMEOUT):
    return WebDriverWait(driver, timeout).until(
        wait_for.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def load(driver, url: str, attempts: int = 5) -> None:
    """Open ``url``, again if Chromium reports a network change meanwhile.

    Chromium aborts a load with ERR_NETWORK_CHANGED when the machine's
    network interfaces change, as they do whenever Docker adds a network.
    """
    for _ in range(attempts):
        driver.get(url)
        if driver.find_elements(By.CSS_SELECTOR, "#main"):
            return
        assert "ERR_NETWORK_CHANGED" in driver.page_source, driver.page_source[:500]
    raise AssertionError(f"{url} did not load in {attempts} attempts")


def sign_in(driver, url: str, username: str, password: str) -> None:
    load(driver, url)
    find(driver, "#username").send_keys(username)
    driver.find_element(By.CSS_SELECTOR, "#password").send_keys(password + Keys.ENTER)
    find(driver, "#who")
    WebDriverWait(driver, PAGE_TIMEOUT).until(
        lambda _: driver.find_element(By.CSS_SELECTOR, "#who").text == username
    )


def wait(driver, timeout: float, condition: Callable[[], object]):
    """Poll ``condition`` until it is truthy; pages re-render, so elements go stale."""
    return WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.5,
        ignored_exceptions=[NoSuchElementException, StaleElementReferenceException],
    ).until(lambda _: condition())


def status_text(driver) -> str:
    return driver.find_element(By.CSS_SELECTOR, "#tenant-status .status").text


def press(driver, css: str, done: Callable[[], object], attempts: int = 3) -> None:
    """Click ``css`` until ``done()`` is truthy, again after a network error.

    The page reports a request aborted by a network change as "Network
    error" and does not resend writes on its own, so a person would click
    again; so does this.
    """
    for _ in range(attempts):
        find(driver, css).click()
        result = wait(
            driver, PAGE_TIMEOUT * 3, lambda: done() or _network_error(driver)
        )
        if result != "network error":
            return
    raise AssertionError(f"{css}: network errors in {attempts} attempts")


def _network_error(driver) -> str | None:
    for element in driver.find_elements(By.CSS_SELECTOR, ".error, .toast"):
        if element.text.startswith("Network error"):
            return "network error"
    return None


@contextlib.contextmanager
def serve_page(html: str) -> Iterator[str]:
    """Serve ``html`` at ``http://127.0.0.1:<port>/``, another site than the admin's.

    The server runs in a thread because Selenium's calls block the test's
    event loop.
    """
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def live_text(driver, css: str) -> str:
    """Return the text of the first element matching ``css``, or "".

    Pages re-render as statuses change, so the element is found and read in
    one script call: an element found first could be gone when read.
    """
    return driver.execute_script(
        "const element = document.querySelector(arguments[0]);"
        "return element ? element.innerText.trim() : '';",
        css,
    )


def tenant_status(driver, name: str) -> str:
    return live_text(driver, f'tr[data-tenant="{name}"] .status')


def both_widths(driver, name: str) -> None:
    set_width(driver, LAPTOP)
    screenshot(driver, f"{name}-laptop")
    set_width(driver, PHONE)
    screenshot(driver, f"{name}-phone")
    set_width(driver, LAPTOP)


def fetch_status(driver, path: str, body: dict, csrf: bool) -> dict:
    """Send a POST from the page's own session; return its status and error."""
    return driver.execute_async_script(
        """
        const [path, body, withCsrf, done] = arguments;
        const headers = {"Content-Type": "application/json"};
        if (withCsrf) {
          const session = await (await fetch("/api/v1/session")).json();
          headers["X-CSRF-Token"] = session.csrf_token;
        }
        const response = await fetch(path, {
          method: "POST", headers, body: JSON.stringify(body),
        });
        const data = await response.json();
        done({status: response.status, code: data.error && data.error.code});
        """,
        path,
        body,
        csrf,
    )


async def test_admin_creates_tenant_and_connects(
    dashboard_daemon, open_browser, ca_file: Path, zenml_venv: Path, tmp_path: Path
):
    daemon = dashboard_daemon
    organization = await daemon.create_organization("acme")
    ada = await daemon.create_user("ada", PASSWORD)
    await daemon.add_member(organization["id"], ada["id"], "organization-admin")
    driver = open_browser("ada")

    load(driver, daemon.dashboard_url)
    find(driver, "#username")
    both_widths(driver, "sign-in")
    sign_in(driver, daemon.dashboard_url, "ada", PASSWORD)
    cookie = driver.get_cookie("zenpro_session")
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == "Strict"

    # The dialog checks the name as it is typed, with the API's rule.
    find(driver, "#new-tenant").click()
    name_input = find(driver, "#tenant-name")
    name_input.send_keys("Bad_Name")
    create = driver.find_element(By.CSS_SELECTOR, "#create-tenant")
    assert not create.is_enabled()
    name_error = driver.find_element(By.CSS_SELECTOR, "#tenant-name-error")
    assert "DNS label" in name_error.text
    screenshot(driver, "new-tenant-dialog-invalid")
    name_input.send_keys(Keys.CONTROL, "a")
    name_input.send_keys("alpha")
    assert create.is_enabled()
    assert driver.find_element(By.CSS_SELECTOR, "#tenant-name-error").text == ""
    screenshot(driver, "new-tenant-dialog")

    # A marker on the window shows the page is never reloaded meanwhile.
    driver.execute_script("window.notReloaded = true")
    press(
        driver,
        "#create-tenant",
        lambda: tenant_status(driver, "alpha") in ("pending", "provisioning"),
    )
    both_widths(driver, "organization-provisioning")
    WebDriverWait(driver, TENANT_TIMEOUT, poll_frequency=1).until(
        lambda _: tenant_status(driver, "alpha") == "available"
    )
    assert driver.execute_script("return window.notReloaded") is True
    both_widths(driver, "organization")

    driver.find_element(By.LINK_TEXT, "alpha").click()
    tenant_url = find(driver, "#tenant-url").text
    assert tenant_url == f"https://alpha.zenml.localhost:{daemon.https_port}"
    # New tenants sign users in through the daemon, so the client is given
    # the daemon's management plane.
    pro_api_url = f"https://admin.zenml.localhost:{daemon.https_port}/mp"
    login = driver.find_element(By.CSS_SELECTOR, "#login-api-key").text
    assert login == f"zenml login {tenant_url} --api-key --pro-api-url {pro_api_url}"
    docs = driver.find_element(By.CSS_SELECTOR, "#docs-link")
    assert docs.get_attribute("href") == f"{tenant_url}/docs"
    ca_link = driver.find_element(By.CSS_SELECTOR, "#ca-link")
    assert ca_link.get_attribute("href").endswith("/api/v1/ca.pem")
    WebDriverWait(driver, PAGE_TIMEOUT).until(
        lambda _: driver.find_elements(By.CSS_SELECTOR, ".events li")
    )

    press(
        driver,
        "#create-api-key",
        lambda: driver.find_elements(By.CSS_SELECTOR, "#api-key-value"),
    )
    api_key = find(driver, "#api-key-value").text
    assert api_key
    both_widths(driver, "tenant-overview")

    workdir = tmp_path / "client"
    workdir.mkdir()
    python = zenml_venv / "bin" / "python"
    run_id = run_pipeline(python, tenant_url, api_key, ca_file, workdir, pro_api_url)
    assert run_id

    # Deactivate asks for the name; reactivate brings the same tenant back.
    press(driver, "#deactivate", lambda: driver.find_elements(By.ID, "confirm"))
    find(driver, "#confirm-name").send_keys("alpha")
    press(driver, "#confirm", lambda: not driver.find_elements(By.ID, "confirm"))
    wait(driver, TENANT_TIMEOUT, lambda: status_text(driver) == "deactivated")
    both_widths(driver, "tenant-deactivated")
    press(driver, "#reactivate", lambda: status_text(driver) != "deactivated")
    wait(driver, TENANT_TIMEOUT, lambda: status_text(driver) == "available")

    # Members and roles: a custom role, given on the tenant.
    driver.find_element(By.CSS_SELECTOR, "#nav-members").click()
    find(driver, "#role-name").send_keys("stack-reader")
    resource = 'input[name="resource"][value="stack"]'
    driver.find_element(By.CSS_SELECTOR, resource).click()
    driver.find_element(By.CSS_SELECTOR, 'input[name="action"][value="read"]').click()
    press(
        driver,
        "#create-role",
        lambda: "stack-reader" in driver.find_element(By.ID, "assign-role").text,
    )
    role_select = driver.find_element(By.ID, "assign-role")
    for option in role_select.find_elements(By.TAG_NAME, "option"):
        if option.text == "stack-reader":
            option.click()
    press(
        driver,
        "#give-role",
        lambda: "stack-reader"
        in driver.find_element(By.CSS_SELECTOR, "#assignments-title + table").text,
    )
    newest_event = live_text(driver, "#org-events li:first-child")
    assert "role 'stack-reader' given to user" in newest_event
    assert "on tenant 'alpha'" in newest_event
    assert "alpha: tenant is available at" in live_text(driver, "#org-events")
    both_widths(driver, "members")

    driver.find_element(By.CSS_SELECTOR, "#sign-out").click()
    find(driver, "#username")
    assert driver.get_cookie("zenpro_session") is None


async def test_viewer_sees_no_create_and_cannot_forge(dashboard_daemon, open_browser):
    daemon = dashboard_daemon
    organization = await daemon.create_organization("acme")
    await daemon.create_organization("globex")
    vic = await daemon.create_user("vic", PASSWORD)
    await daemon.add_member(organization["id"], vic["id"], "organization-viewer")
    driver = open_browser("vic")

    sign_in(driver, daemon.dashboard_url, "vic", PASSWORD)
    find(driver, "h1")
    assert driver.find_elements(By.CSS_SELECTOR, "#new-tenant") == []
    assert not driver.find_element(By.CSS_SELECTOR, "#switcher").is_displayed()
    both_widths(driver, "organization-viewer")

    path = f"/api/v1/organizations/{organization['id']}/tenants"
    forged = fetch_status(driver, path, {"name": "forged"}, csrf=False)
    assert forged == {"status": 403, "code": "csrf_failed"}
    with_token = fetch_status(driver, path, {"name": "forged"}, csrf=True)
    assert with_token == {"status": 403, "code": "forbidden"}

    listed = await daemon.call(
        "GET", f"/api/v1/tenants?organization_id={organization['id']}"
    )
    assert listed.body["total"] == 0


async def test_sign_in_rejects_wrong_password(dashboard_daemon, open_browser):
    daemon = dashboard_daemon
    await daemon.create_user("eve", PASSWORD)
    driver = open_browser("eve")

    load(driver, daemon.dashboard_url)
    find(driver, "#username").send_keys("eve")
    driver.find_element(By.CSS_SELECTOR, "#password").send_keys("wrong" + Keys.ENTER)
    error = find(driver, ".signin .error")
    WebDriverWait(driver, PAGE_TIMEOUT).until(lambda _: error.text)
    assert "wrong username or password" in error.text
    assert driver.get_cookie("zenpro_session") is None


async def test_sign_in_with_api_key_and_keyboard(dashboard_daemon, open_browser):
    daemon = dashboard_daemon
    organization = await daemon.create_organization("acme")
    driver = open_browser("admin")

    load(driver, daemon.dashboard_url)
    find(driver, "#username")
    # Keyboard only: the tab list, then the key field, then Enter.
    driver.find_element(By.CSS_SELECTOR, "#tab-api-key").send_keys(Keys.ENTER)
    key_input = find(driver, "#api-key")
    key_input.send_keys(daemon.admin_token + Keys.ENTER)
    WebDriverWait(driver, PAGE_TIMEOUT).until(
        lambda _: driver.find_element(By.CSS_SELECTOR, "#who").text == "admin"
    )
    heading = find(driver, "h1").text
    assert heading == f"{organization['name']}: tenants"
    new_tenant = find(driver, "#new-tenant")
    new_tenant.send_keys(Keys.ENTER)
    assert driver.switch_to.active_element.get_attribute("id") == "tenant-name"
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    WebDriverWait(driver, PAGE_TIMEOUT).until(
        lambda _: not driver.find_elements(By.CSS_SELECTOR, "dialog[open]")
    )


async def test_failed_tenant_shows_reason_and_retry(dashboard_daemon, open_browser):
    daemon = dashboard_daemon
    organization = await daemon.create_organization("acme")
    # No image exists for this version, so provisioning fails at once.
    response = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization['id']}/tenants",
        json={"name": "broken", "zenml_version": "0.0.1"},
    )
    assert response.status == 202, response.body
    driver = open_browser("admin")

    load(driver, daemon.dashboard_url)
    find(driver, "#tab-api-key").click()
    find(driver, "#api-key").send_keys(daemon.admin_token + Keys.ENTER)
    WebDriverWait(driver, TENANT_TIMEOUT, poll_frequency=1).until(
        lambda _: tenant_status(driver, "broken") == "failed"
    )
    reason = live_text(driver, 'tr[data-tenant="broken"] .reason')
    assert "image" in reason
    assert find(driver, '[data-retry="broken"]').is_displayed()
    both_widths(driver, "organization-failed")

    # Deleting asks for the tenant's name before it does anything.
    driver.find_element(By.LINK_TEXT, "broken").click()
    find(driver, "#status-reason")
    assert "Image" in live_text(driver, "#status-reason")
    find(driver, "#delete").click()
    confirm = find(driver, "#confirm")
    assert confirm.text == "Delete broken"
    assert not confirm.is_enabled()
    find(driver, "#confirm-name").send_keys("broke")
    assert not confirm.is_enabled()
    driver.find_element(By.CSS_SELECTOR, "#confirm-name").send_keys("n")
    assert confirm.is_enabled()
    screenshot(driver, "delete-confirmation")
    press(driver, "#confirm", lambda: "#/org/" in driver.current_url)
    WebDriverWait(driver, TENANT_TIMEOUT, poll_frequency=1).until(
        lambda _: live_text(driver, "main .panel") == "No tenants yet."
    )
    # The deletion runs in the background: wait for the API to finish it.
    path = f"/api/v1/tenants?organization_id={organization['id']}"
    deadline = time.monotonic() + TENANT_TIMEOUT
    while (await daemon.call("GET", path)).body["total"] != 0:
        assert time.monotonic() < deadline, "the tenant was never deleted"
        await asyncio.sleep(0.2)


async def test_organization_tenant_overview(dashboard_daemon, open_browser):
    daemon = dashboard_daemon
    organization = await daemon.create_organization("acme")
    # The overview needs no running server, so this tenant never starts.
    response = await daemon.call(
        "POST",
        f"/api/v1/organizations/{organization['id']}/tenants",
        json={"name": "gamma", "zenml_version": "0.0.1", "auth_mode": "organization"},
    )
    assert response.status == 202, response.body
    pro_api_url = response.body["pro_api_url"]
    driver = open_browser("admin")

    load(driver, daemon.dashboard_url)
    find(driver, "#tab-api-key").click()
    find(driver, "#api-key").send_keys(daemon.admin_token + Keys.ENTER)
    find(driver, 'tr[data-tenant="gamma"]')
    driver.find_element(By.LINK_TEXT, "gamma").click()
    tenant_url = find(driver, "#tenant-url").text
    login = find(driver, "#login-api-key").text
    browser_login = find(driver, "#login-browser").text
    press(
        driver,
        "#create-api-key",
        lambda: driver.find_elements(By.CSS_SELECTOR, "#api-key-value"),
    )
    api_key = find(driver, "#api-key-value").text
    both_widths(driver, "tenant-overview-organization")

    assert login == f"zenml login {tenant_url} --api-key --pro-api-url {pro_api_url}"
    assert browser_login == f"zenml login {tenant_url} --pro-api-url {pro_api_url}"
    assert api_key.startswith("ZENPROKEY_")
    me = await daemon.call("GET", "/api/v1/users/me", token=api_key)
    assert me.body["username"] == "admin"


async def test_cross_site_form_cannot_create(dashboard_daemon, open_browser):
    """A signed-in admin visits another site whose form posts to the API."""
    daemon = dashboard_daemon
    organization = await daemon.create_organization("acme")
    driver = open_browser("admin")
    load(driver, daemon.dashboard_url)
    find(driver, "#tab-api-key").click()
    find(driver, "#api-key").send_keys(daemon.admin_token + Keys.ENTER)
    find(driver, "#new-tenant")

    target = (
        f"https://admin.zenml.localhost:{daemon.https_port}"
        f"/api/v1/organizations/{organization['id']}/tenants"
    )
    # A page on another site: an HTML form can send text/plain that parses as
    # JSON, and the browser decides whether the session cookie goes along.
    attack = (
        f'<form id="attack" method="post" enctype="text/plain" action="{target}">'
        '<input name=\'{"name": "forged", "x": "\' value=\'"}\'></form>'
    )
    with serve_page(attack) as page_url:
        driver.get(page_url)
        driver.execute_script("document.getElementById('attack').submit()")
        WebDriverWait(driver, PAGE_TIMEOUT).until(
            lambda _: driver.current_url.startswith("https://admin.")
        )
        answer = driver.find_element(By.TAG_NAME, "body").text
    assert '"code": "unauthorized"' in answer

    listed = await daemon.call(
        "GET", f"/api/v1/tenants?organization_id={organization['id']}"
    )
    assert listed.body["total"] == 0
