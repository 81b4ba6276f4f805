"""``creditplus portal serve`` in a real headless Chromium: lookup, sign-in, another enterprise's page refused,
sign-out; the portal reads as real login users granted the public_query and enterprise_self channels."""
from __future__ import annotations

import collections
import os
import re
import subprocess
import threading
import uuid

import httpx
import pytest
import uvicorn
from psycopg import sql
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from conftest import CLI, SCREENSHOTS, browser_errors, portal_credential
from creditplus import portal_web, warehouse
from creditplus.cli import main
from test_channels import RESIDENT_ID
from test_publish import A, B, ENTERPRISES, GRADES, D2, published_warehouse

PASSWORD = "portal-login-密码"


@pytest.fixture(scope="module")
def url(make_database) -> str:
    return published_warehouse(make_database)


@pytest.fixture(scope="module")
def portal(url, tmp_path_factory) -> str:
    """The portal on a free loopback port, reading as two login users of its own (as in production)."""
    users = {channel: f"cp_portal_{channel}_{uuid.uuid4().hex[:8]}" for channel in ("public_query", "enterprise_self")}
    patch = pytest.MonkeyPatch()
    patch.setenv("CREDITPLUS_WAREHOUSE_URL", url)
    patch.setenv("CREDITPLUS_ACCESS_PASSWORD", PASSWORD)
    try:
        for channel, user in users.items():
            assert main(["access", "grant", "--channel", channel, "--user", user]) == 0
        login = {channel: url.replace("postgresql://postgres@", f"postgresql://{user}:{PASSWORD}@")
                 for channel, user in users.items()}
        readers = portal_web.Readers(login["public_query"], login["enterprise_self"], url)
        server = uvicorn.Server(uvicorn.Config(portal_web.create_app(readers), host="127.0.0.1",
                                               port=warehouse.free_port(), log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the portal did not start")
            thread.join(0.05)
        yield f"http://127.0.0.1:{server.config.port}"
        server.should_exit = True
        thread.join(30)
    finally:
        patch.undo()
        with warehouse.connect(url, autocommit=True) as conn:
            for user in users.values():
                conn.execute(sql.SQL("drop owned by {0}; drop role {0}").format(sql.Identifier(user)))


def shot(browser, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"portal-{name}.png"))


def text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def assert_clean(browser) -> None:
    """No console error or failed load (but the page's own status, 403 or 404, asserted apart), no resident ID,
    every stylesheet from the portal itself."""
    assert [e for e in browser_errors(browser) if not e.startswith(browser.current_url + " ")] == []
    assert not RESIDENT_ID.search(browser.page_source)
    assert not re.search(r"(src|href)=\"https?://", browser.page_source)
    assert browser.execute_script("return getComputedStyle(document.querySelector('header')).borderBottomStyle") == "solid"


def submit(browser, button: str) -> None:
    """Click ``button`` and wait until the page it leads to has replaced this one."""
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.CSS_SELECTOR, button).click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(page))
    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return document.readyState") == "complete")


def search(browser, portal: str, query: str) -> None:
    browser.get(portal + "/")
    browser.find_element(By.ID, "q").send_keys(query)
    submit(browser, "form.search button")


def sign_in(browser, portal: str, uscc: str, credential: str) -> None:
    browser.get(portal + "/login")
    browser.find_element(By.ID, "uscc").send_keys(uscc)
    browser.find_element(By.ID, "credential").send_keys(credential)
    submit(browser, "form.login button")


def test_the_public_looks_up_a_grade_by_code_or_name(browser, portal):
    browser_errors(browser)
    search(browser, portal, B)
    rows = browser.find_elements(By.CSS_SELECTOR, "table.results tbody tr")
    assert [r.text.split() for r in rows] == [[B, ENTERPRISES[B][0], GRADES[D2][B], str(D2)]]
    assert_clean(browser)
    shot(browser, "lookup")
    search(browser, portal, "黑河")  # part of a name
    found = {r.find_element(By.CSS_SELECTOR, "td.code").text for r in browser.find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert found == {u for u, (name, *_) in ENTERPRISES.items() if "黑河" in name}
    assert ENTERPRISES[A][1] not in browser.page_source  # no legal representative on the public page
    search(browser, portal, "91230000MA00000000")
    assert "未找到评价结果" in text(browser) and "No published grade found" in text(browser)
    assert_clean(browser)
    shot(browser, "not-found")
    assert httpx.get(portal + "/lookup", params={"q": "91230000MA00000000"}).status_code == 404


def test_an_enterprise_signs_in_sees_its_own_page_only_and_signs_out(browser, portal, url):
    credential = portal_credential(url, A)
    browser.delete_all_cookies()
    sign_in(browser, portal, A, credential)
    assert browser.current_url == f"{portal}/enterprise/{A}", text(browser)
    assert browser.find_element(By.ID, "grade").text == GRADES[D2][A]
    points, explained, code = {}, collections.Counter(), None
    for row in browser.find_elements(By.CSS_SELECTOR, "table.indicators tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        if "indicator" in row.get_attribute("class"):
            code = cells[0].text
            points[code] = int(cells[2].text)
        else:  # the records (or base, band, floor) behind the indicator above
            explained[code] += int(cells[2].text)
    assert list(points) == ["B1", "O5", "S3"] and explained == points
    objections = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "table.objections tbody tr")]
    assert objections == ["OBJ-2 2026-11-10 09:00 2026-11-19 不予支持 rejected 2026-11-18 16:00"]  # +08:00
    assert "第十四条" in browser.page_source and "第十五条" in browser.page_source
    assert_clean(browser)
    shot(browser, "enterprise")
    cookie = browser.get_cookie(portal_web.SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    browser.get(f"{portal}/enterprise/{B}")  # another enterprise's code in the URL
    assert "无权查看" in text(browser) and ENTERPRISES[B][0] not in browser.page_source
    assert_clean(browser)
    shot(browser, "forbidden")
    assert httpx.get(f"{portal}/enterprise/{B}", cookies={portal_web.SESSION_COOKIE: cookie["value"]}).status_code == 403
    browser.get(f"{portal}/enterprise/{A}")
    submit(browser, "form.logout button")
    assert browser.current_url == f"{portal}/" and browser.get_cookie(portal_web.SESSION_COOKIE) is None
    browser.get(f"{portal}/enterprise/{A}")
    assert browser.current_url == f"{portal}/login"


def test_a_wrong_credential_is_refused_alike_and_repeated_tries_are_locked_out(browser, portal, url):
    credential = portal_credential(url, A)
    other = portal_credential(url, B)
    browser.delete_all_cookies()
    messages = set()
    for uscc, wrong in ((A, credential[:-2] + "xx"), (A, other), (B, "nonsense"), (A, "")):  # wrong secret, another's
        sign_in(browser, portal, uscc, wrong or " ")
        messages.add(browser.find_element(By.ID, "refused").text)
    assert messages == {"统一社会信用代码或凭证不正确。The credit code or the credential is not correct."}
    assert_clean(browser)
    shot(browser, "refused")
    client = httpx.Client(base_url=portal, follow_redirects=False)
    for _ in range(portal_web.MAX_FAILURES_PER_CODE):
        assert client.post("/login", data={"uscc": B, "credential": "wrong"}).status_code in (401, 429)
    locked = client.post("/login", data={"uscc": B, "credential": other})  # even the right one, for a while
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0 and "尝试次数过多" in locked.text
    assert client.post("/login", data={"uscc": A, "credential": credential}).status_code == 303  # other codes: not yet


def test_a_revoked_credential_ends_the_session_at_the_next_page(browser, portal, url):
    credential = portal_credential(url, A)
    browser.delete_all_cookies()
    sign_in(browser, portal, A, credential)
    assert browser.current_url == f"{portal}/enterprise/{A}"
    patch = pytest.MonkeyPatch()
    patch.setenv("CREDITPLUS_WAREHOUSE_URL", url)
    try:
        assert main(["portal", "revoke", "--credential", credential.split(".")[0]]) == 0
    finally:
        patch.undo()
    browser.get(f"{portal}/enterprise/{A}")
    assert browser.current_url == f"{portal}/login?expired"
    assert "登录已过期或凭证已撤销" in text(browser)


def test_portal_serve_reads_as_the_group_roles_without_logins_of_its_own(url):
    """The demo's way: no CREDITPLUS_PORTAL_*_URL, so each transaction takes the channel's group role."""
    port = warehouse.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITPLUS_PORTAL_")}
    env["CREDITPLUS_WAREHOUSE_URL"] = url
    server = subprocess.Popen([CLI, "portal", "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        said = [server.stdout.readline(), server.stdout.readline()]
        assert "reading as the channels' group roles" in said[0] and said[1].startswith(f"portal: http://127.0.0.1:{port}/")
        for _ in range(100):
            try:
                found = httpx.get(f"http://127.0.0.1:{port}/lookup", params={"q": A})
                break
            except httpx.TransportError:
                threading.Event().wait(0.1)
        assert found.status_code == 200 and ENTERPRISES[A][0] in found.text
    finally:
        server.terminate()
        server.wait(30)


def test_portal_serve_without_a_warehouse_is_one_line(tmp_path):
    env = {**os.environ, "CREDITPLUS_WAREHOUSE_URL": f"postgresql://postgres@127.0.0.1:{warehouse.free_port()}/x"}
    done = subprocess.run([CLI, "portal", "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "cannot connect to the warehouse" in done.stderr
    assert "CREDITPLUS_PORTAL_PUBLIC_URL" in done.stderr


def test_what_a_visitor_types_is_shown_escaped_and_cross_site_forms_are_refused(portal):
    found = httpx.get(portal + "/lookup", params={"q": '<b id="x">粗</b><base href="https://evil.example/">'})
    assert found.status_code == 404 and "<b id=" not in found.text and "<base href=\"https" not in found.text
    assert "&lt;b id=&#34;x&#34;&gt;粗&lt;/b&gt;" in found.text
    assert "base-uri 'none'" in found.headers["content-security-policy"]
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
        refused = httpx.post(portal + "/login", data={"uscc": A, "credential": "x"}, headers=headers)
        assert refused.status_code == 403
    signed_out = httpx.post(portal + "/logout", headers={"origin": portal})  # the portal's own form
    assert signed_out.status_code == 303 and "frame-ancestors 'none'" in signed_out.headers["content-security-policy"]
    assert "nosniff" == httpx.get(portal + "/static/portal.css").headers["x-content-type-options"]
