"""Flower: a login is required, and a real browser sees the workers and the tasks."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from launcher.services import celery, free_port, http_ok, stop, wait_for
from tests.integration.test_events_view import VIEW, get

LOGIN = ("ops", "flower-test-password")


@pytest.fixture(scope="module")
def flower(env: dict[str, str], worker: subprocess.Popen, logs: Path) -> Iterator[str]:
    port = free_port()
    flower_env = {**env, "FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": ":".join(LOGIN)}
    with (logs / "flower.log").open("w") as out:
        proc = celery(flower_env, "flower", stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/healthcheck"), 30, "flower", proc)
    yield url
    stop([proc])


def test_flower_requires_its_login(flower):
    """Without the configured login Flower answers 401; with it, 200."""
    assert requests.get(f"{flower}/workers", timeout=10).status_code == 401
    assert requests.get(f"{flower}/workers", auth=("ops", "wrong"), timeout=10).status_code == 401
    assert requests.get(f"{flower}/workers", auth=LOGIN, timeout=10).status_code == 200


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Debian's headless Chromium, sending Flower's login with every request."""
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    token = base64.b64encode(":".join(LOGIN).encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                           {"headers": {"Authorization": f"Basic {token}"}})
    yield driver
    driver.quit()


def test_browser_sees_the_worker_and_a_fetch_task(flower, browser, api, logs):
    """In a real browser Flower lists the worker, and the fetch task a miss caused."""
    assert get(f"{api}{VIEW}/team-standup/").status_code == 200  # a fetch, after Flower
    browser.get(f"{flower}/workers")
    WebDriverWait(browser, 30).until(lambda d: f"test-{os.getpid()}@" in d.page_source)
    browser.get(f"{flower}/tasks")
    WebDriverWait(browser, 30).until(lambda d: "cachedproxy.fetch" in d.page_source)
    browser.save_screenshot(str(logs / "flower-tasks.png"))
