"""The status page at /admin/ on a real stack (the API server, a worker, beat): its login,
what it shows without JavaScript, and a real browser watching an upstream fail and
recover while the page updates itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import chromium
from tests.harness import Demo, Stack
from tests.helpers import VIEW, eventually, make_live

TOKEN = "status-page-admin-token-0123456789abcdef"
PREFIX = "cpstatus"


@pytest.fixture(scope="module")
def system(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, Stack]]:
    """Its own Redis, ``python -m api`` with an admin token, a worker and beat: the API's
    base URL, and the stack."""
    logs = tmp_path_factory.mktemp("status-page")
    with Stack({**env, "KEY_PREFIX": PREFIX, "ADMIN_TOKEN": TOKEN,
                "REFRESH_PLAN_INTERVAL": "1"}, logs) as running:
        running.redis_server()
        running.worker()
        running.beat()
        yield running.api(), running


@pytest.fixture
def stack(system: tuple[str, Stack]) -> str:
    return system[0]


def logged_in(api: str) -> requests.Session:
    session = requests.Session()
    r = session.post(f"{api}/admin/login", data={"token": TOKEN}, allow_redirects=False,
                     timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/admin/"
    return session


def test_the_page_needs_a_login_and_the_cookie_opens_only_the_page(system, stack):
    """Without a session the page is the login form (401, no figures); a wrong token is
    refused; the right one, posted, gives an HttpOnly, SameSite=Strict cookie for
    /admin/ whose page lists every upstream; the cookie purges nothing and reads no
    entries; logging out ends it."""
    r = requests.get(f"{stack}/admin/", timeout=10)
    assert r.status_code == 401 and 'name="token"' in r.text and "data-upstream" not in r.text
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    wrong = requests.post(f"{stack}/admin/login", data={"token": "nope"}, timeout=10)
    assert wrong.status_code == 401 and "not the admin token" in wrong.text
    session = logged_in(stack)
    cookie = next(c for c in session.cookies if c.name == "cachedproxy_admin")
    assert cookie.path == "/admin/" and TOKEN not in cookie.value
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite").lower() == "strict"
    page = session.get(f"{stack}/admin/", timeout=10)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert re.findall(r'data-upstream="(\w+)"', page.text) == ["c42", "github"]
    # The numbers are in the HTML itself, and a meta refresh updates it without scripts.
    assert '<noscript><meta http-equiv="refresh"' in page.text
    assert 'data-card="hit-ratio"' in page.text and 'data-card="redis"' in page.text
    assert session.get(f"{stack}/admin/status", timeout=10).json()["upstreams"][0][
        "upstream"] == "c42"
    for method, path in (("GET", "/admin/entries"), ("POST", "/admin/purge")):
        assert session.request(method, f"{stack}{path}", json={"upstream": "c42"},
                               timeout=10).status_code == 401  # a cookie never purges
    # A live view's resources are counted for the page by the plan task (every second).
    assert requests.get(f"{stack}{VIEW}/conference_2026/", timeout=10).status_code == 200
    make_live(redis.Redis.from_url(system[1].env["REDIS_URL"]), PREFIX, "conference_2026")

    def c42() -> dict:
        return session.get(f"{stack}/admin/status", timeout=10).json()["upstreams"][0]

    eventually(lambda: c42()["live_resources"] >= 2, 15, "the live resources counted")
    assert c42()["live_as_of"] is not None and c42()["oldest_stale_s"] == 0
    bearer = requests.get(f"{stack}/admin/", timeout=10,
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200  # scripts: the Bearer token
    session.post(f"{stack}/admin/logout", allow_redirects=False, timeout=10)
    assert session.get(f"{stack}/admin/", timeout=10).status_code == 401


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    driver = chromium(tmp_path / "profile")
    yield driver
    driver.quit()


def test_a_browser_sees_an_upstream_fail_and_recover(stack, browser, demo: Demo, logs: Path):
    """Logged in through the form, the page shows both upstreams answering and updates
    itself: the hit ratio appears as views are read; when the demo answers 503 the
    Calendar42 card turns failing (with since when and the error), and answering again
    once it answers."""
    browser.get(f"{stack}/admin/")
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-upstream="c42"]'))
    assert TOKEN not in browser.current_url
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "on"

    # The page swaps its <main> every few seconds: each look is one script, so it never
    # holds an element the next swap removes (a stale element reference).
    def card(upstream: str) -> dict:
        return browser.execute_script(
            "const c = document.querySelector(arguments[0]);"
            "return c && {state: c.dataset.state, text: c.innerText};",
            f'[data-upstream="{upstream}"]')

    def state(upstream: str) -> str:
        return card(upstream)["state"]

    assert state("c42") == state("github") == "answering"
    for _ in range(3):  # a miss, then hits: counted, and shown after the next flush
        assert requests.get(f"{stack}{VIEW}/team-standup/", timeout=10).status_code == 200

    def hit_ratio() -> str:
        return browser.execute_script(
            "return document.querySelector('[data-card=\"hit-ratio\"] .big').innerText")

    wait.until(lambda d: hit_ratio().endswith("%"))
    demo.upstream.set_fault_from({"mode": "error", "status": 503})
    for event in ("quiet-evening", "launch-party"):  # two failing fetches each
        assert requests.get(f"{stack}{VIEW}/{event}/", timeout=10).status_code >= 500
    wait.until(lambda d: state("c42") == "failing")
    failing = card("c42")["text"]
    assert "failing since" in failing and "upstream answered 503" in failing
    assert state("github") == "answering"
    browser.save_screenshot(str(logs / "status-page-failing.png"))
    demo.upstream.set_fault(None)
    assert requests.get(f"{stack}{VIEW}/board-meeting/", timeout=10).status_code == 200
    wait.until(lambda d: state("c42") == "answering")
    browser.save_screenshot(str(logs / "status-page.png"))
    eventually(lambda: "upstream answered 503" not in card("c42")["text"], 10,
               "the error gone with the failure")
    # A phone's width: one column, nothing wider than the screen.
    browser.set_window_size(390, 844)
    wait.until(lambda d: d.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"))
    browser.save_screenshot(str(logs / "status-page-phone.png"))



def test_without_redis_the_page_says_so_and_comes_back_by_itself(system):
    """Redis stopped: the page (still logged in) says Redis does not answer, its JSON is
    503 store_unavailable, and so are the admin API's figures; Redis back, the page is
    whole again with no restart."""
    api, stack = system
    session = logged_in(api)
    stack.stop_redis()
    try:
        page = session.get(f"{api}/admin/", timeout=10)
        assert page.status_code == 503 and "data-unavailable" in page.text
        assert "the figures are back when Redis answers" in page.text
        for path in ("/admin/status", "/admin/upstreams"):
            r = session.get(f"{api}{path}", timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 503, path
            assert r.json()["error"]["code"] == "store_unavailable", path
    finally:
        stack.start_redis_again()
    eventually(lambda: session.get(f"{api}/admin/", timeout=10).status_code == 200, 15,
               "the page whole again")
