"""Flower: a login is required, and a real browser sees the workers and the tasks."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.support.ui import WebDriverWait

from shared.config.settings import load_settings
from shared.queue import celery_app
from shared.store.keys import Keys
from tests.browser import chromium
from tests.harness import Stack
from tests.helpers import PREFIX, VIEW, eventually, get

LOGIN = ("ops", "flower-test-password")


@pytest.fixture(scope="module")
def flower(env: dict[str, str], worker: subprocess.Popen, logs: Path) -> Iterator[str]:
    with Stack(env, logs) as stack:
        yield stack.flower(FLOWER_BASIC_AUTH=":".join(LOGIN))


def test_flower_requires_its_login(flower):
    """Without the configured login Flower answers 401; with it, 200."""
    assert requests.get(f"{flower}/workers", timeout=10).status_code == 401
    assert requests.get(f"{flower}/workers", auth=("ops", "wrong"), timeout=10).status_code == 401
    assert requests.get(f"{flower}/workers", auth=LOGIN, timeout=10).status_code == 200


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Debian's headless Chromium, sending Flower's login with every request."""
    driver = chromium(tmp_path / "profile")
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
    WebDriverWait(browser, 30).until(lambda d: "worker@" in d.page_source)
    browser.get(f"{flower}/tasks")
    WebDriverWait(browser, 30).until(lambda d: "cachedproxy.fetch" in d.page_source)
    browser.save_screenshot(str(logs / "flower-tasks.png"))


def test_flower_keeps_a_bounded_number_of_tasks(env, tmp_path: Path):
    """Flower holds at most flower.max_tasks tasks however many it hears of, so its
    memory stays bounded in a long run."""
    with Stack(env, tmp_path) as stack:
        url = stack.flower(FLOWER_BASIC_AUTH=":".join(LOGIN), FLOWER_MAX_TASKS="50")
        app = celery_app(load_settings(env))
        sent = 0
        with app.connection_for_write() as conn:
            dispatcher = app.events.Dispatcher(conn, hostname="fake@test")
            # Flower subscribes to events a moment after it answers: send until it has
            # seen some, then 200 more.
            def seen() -> int:
                tasks = requests.get(f"{url}/api/tasks", auth=LOGIN, timeout=10).json()
                return len(tasks)

            while seen() == 0:
                dispatcher.send("task-received", uuid=f"t-{sent}", name="cachedproxy.fetch")
                sent += 1
                assert sent < 5000, "flower never saw an event"
                time.sleep(0.01)
            for i in range(200):
                dispatcher.send("task-received", uuid=f"more-{i}", name="cachedproxy.fetch")
        eventually(lambda: "more-199" in requests.get(
            f"{url}/api/tasks", auth=LOGIN, timeout=10).json(), 10, "the last event seen")
        assert seen() <= 50


def test_ticks_stay_out_of_flower(flower, env, api, store, tmp_path: Path):
    """Beat's tick (one a second) sends no task events: Flower lists the fetches a
    miss causes, and no tick."""
    with Stack(env, tmp_path) as stack:
        stack.beat(REFRESH_TICK_INTERVAL="0.2")
        tick_key = Keys(PREFIX).last_tick()
        eventually(lambda: store.get(tick_key) is not None, 20, "beat ticks")
        first = float(store.get(tick_key))
        eventually(lambda: float(store.get(tick_key)) > first + 0.5, 10, "several ticks")
        assert get(f"{api}{VIEW}/quiet-evening/").status_code == 200

        def names() -> set[str]:
            tasks = requests.get(f"{flower}/api/tasks", auth=LOGIN, timeout=10).json()
            return {t.get("name") for t in tasks.values()}

        eventually(lambda: "cachedproxy.fetch" in names(), 20, "flower lists the fetch")
        assert "cachedproxy.tick" not in names()
