"""``make run`` as users meet it: ``python -m launcher`` supervising the whole system.

Each test starts the launcher with its own Redis, demo upstream, worker, beat, Flower and
API on free ports, then kills or signals processes the way an operator (or a crash) would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests

from shared.config.settings import PROJECT_DIR
from shared.store.keys import Keys
from tests.harness import process_tree, wait_for_worker
from tests.helpers import VIEW, eventually, expected, get
from tests.launched import ADMIN_TOKEN, Launched, api_leader, leader


def test_killed_processes_come_back_while_cached_views_stay_up(launched: Launched):
    """kill -9 of the worker's main process, beat, Flower or the demo upstream: the
    cached view answers 200 throughout, the process is back within 5 s, misses work."""
    view = f"{launched.api}{VIEW}/launch-party/"
    assert get(view).json() == expected("launch-party")
    statuses: list[int] = []
    done = threading.Event()

    def read_steadily() -> None:
        while not done.is_set():
            statuses.append(requests.get(view, timeout=5).status_code)
            done.wait(0.05)  # a client reading 20 times a second

    reader = threading.Thread(target=read_steadily)
    reader.start()
    try:
        for marker in (" worker --hostname", " beat --schedule", " flower", "-m demo"):
            old = leader(launched, marker)
            assert old is not None, marker
            os.kill(old, signal.SIGKILL)
            eventually(lambda m=marker, o=old: leader(launched, m) not in (None, o), 5,
                       f"{marker} restarted")
    finally:
        done.set()
        reader.join(10)
    assert statuses and set(statuses) == {200}
    wait_for_worker(launched.env, launched.proc, timeout=10)
    assert get(f"{launched.api}{VIEW}/team-standup/").json() == expected("team-standup")
    exits = [r for r in launched.records() if r.get("event") == "process exited; restarting"]
    assert [r["service"] for r in exits] == ["worker", "beat", "flower", "demo"]
    assert {r["signal"] for r in exits} == {"SIGKILL"}
    assert launched.proc.poll() is None


def test_ctrl_c_lets_slow_misses_finish_and_stops_everything(launched: Launched):
    """SIGINT to the launcher's process group (Ctrl-C), twice, with 4 slow misses in
    flight: all 4 get their view, every process is gone within 10 s, exit code 0, and
    every line printed is JSON."""
    requests.put(launched.demo("latency"), json={"seconds": 0.5}, timeout=5)
    children = process_tree(launched.proc.pid)
    events = ["team-standup", "quiet-evening", "board-meeting", "launch-party"]
    with ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(get, f"{launched.api}{VIEW}/{e}/") for e in events]

        def all_asked() -> bool:
            seen = requests.get(launched.demo("counters"), timeout=5).json()["requests"]
            return all(e in seen.get("event", {}) for e in events)

        eventually(all_asked, 10, "every miss reached upstream")
        os.killpg(launched.proc.pid, signal.SIGINT)
        stopping = time.monotonic()
        # Two signals sent back to back can reach the handler as one; send the second
        # (make forwarding the same Ctrl-C) once the launcher has taken the first.
        eventually(lambda: '"stopping"' in launched.output.read_text(), 5,
                   "the launcher took the first signal")
        os.killpg(launched.proc.pid, signal.SIGINT)
        answers = [p.result(timeout=15) for p in pending]
    assert [r.status_code for r in answers] == [200] * 4
    assert [r.json() for r in answers] == [expected(e) for e in events]
    assert launched.proc.wait(timeout=12) == 0
    assert time.monotonic() - stopping < 10.5
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()
                and "(Z)" not in Path(f"/proc/{pid}/stat").read_text()]
    records = launched.records()  # raises if any line is not JSON
    assert any(r.get("event") == "already stopping; a third signal kills everything"
               for r in records)
    assert records[-1]["event"] == "stopped" and records[-1]["exit_code"] == 0
    # What pointed the tools at the system is gone with it.
    assert not (launched.home / "run" / "env").exists()
    assert not (launched.home / "run" / "launcher.pid").exists()


def test_fetch_lost_with_a_killed_worker_fails_fast_and_frees_its_resource(
        launched: Launched):
    """kill -9 of the worker's main process during a slow miss: once the worker is back
    the waiting request gets 503 fetch_failed (not a timeout), and the next request
    fetches the resource at once instead of waiting for the dead fetch's lock."""
    requests.put(launched.demo("latency"), json={"seconds": 8.0}, timeout=5)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(get, f"{launched.api}{VIEW}/board-meeting/")

        store = redis.Redis.from_url(launched.env["REDIS_URL"])
        running = Keys("cplaunch").running(f"worker@{socket.gethostname()}")
        eventually(lambda: store.hlen(running) == 2, 10, "both fetches running")
        os.kill(leader(launched, " worker --hostname"), signal.SIGKILL)
        killed = time.monotonic()
        r = pending.result(timeout=15)
    assert r.status_code == 503 and r.json()["error"]["code"] == "fetch_failed"
    assert time.monotonic() - killed < 9  # before the 10 s miss wait ran out
    requests.put(launched.demo("latency"), json={"seconds": 0}, timeout=5)
    started = time.monotonic()
    assert get(f"{launched.api}{VIEW}/board-meeting/").json() == expected("board-meeting")
    assert time.monotonic() - started < 5  # not blocked by the dead fetch's 35 s lock


def test_killed_redis_comes_back_on_its_port_with_its_data(launched: Launched):
    """kill -9 of make run's own redis-server: the launcher starts it again on the same
    port with its append-only data, views cached before are answered throughout (from the
    API processes' copies while Redis is away), misses are 200 again within 5 s of the
    kill, and the run goes on."""
    view = f"{launched.api}{VIEW}/launch-party/"
    for _ in range(40):  # a new connection each: either server process may take it
        assert requests.get(view, timeout=5).status_code == 200
    store = redis.Redis.from_url(launched.env["REDIS_URL"], socket_timeout=2)
    entries = sorted(store.scan_iter(Keys("cplaunch").pattern("entry")))
    assert entries
    statuses: list[int] = []
    done = threading.Event()

    def read_steadily() -> None:
        while not done.is_set():
            statuses.append(requests.get(view, timeout=5).status_code)
            done.wait(0.05)

    reader = threading.Thread(target=read_steadily)
    old = leader(launched, "redis-server")
    assert old is not None
    reader.start()
    try:
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()

        def a_miss_answers() -> bool:
            r = requests.get(f"{launched.api}{VIEW}/team-standup/", timeout=5)
            return r.status_code == 200

        eventually(a_miss_answers, 5, "a miss answered 200 after the kill")
        back = time.monotonic() - killed
        eventually(lambda: len(statuses) >= 20, 5, "reads during the outage")
    finally:
        done.set()
        reader.join(10)
    assert back < 5
    assert leader(launched, "redis-server") not in (None, old)
    assert set(statuses) == {200}, statuses
    assert set(entries) <= set(store.scan_iter(Keys("cplaunch").pattern("entry")))
    exits = [r for r in launched.records() if r.get("event") == "process exited; restarting"]
    assert [(r["service"], r["signal"]) for r in exits] == [("redis", "SIGKILL")]
    assert launched.proc.poll() is None


def test_killed_api_main_process_refuses_connections_only_while_it_restarts(
        launched: Launched):
    """kill -9 of the API's main process (it holds the listening socket): as the README
    says, new connections are refused while the launcher starts it again, a few seconds
    at most; every request that is answered is a 200, and then every request is."""
    view = f"{launched.api}{VIEW}/launch-party/"
    assert get(view).json() == expected("launch-party")
    old = api_leader(launched)
    assert old is not None
    answers: list[tuple[float, int | str]] = []
    done = threading.Event()

    def read_steadily() -> None:
        while not done.is_set():
            try:
                answer: int | str = requests.get(view, timeout=5).status_code
            except requests.ConnectionError:
                answer = "refused"
            answers.append((time.monotonic(), answer))
            done.wait(0.02)

    reader = threading.Thread(target=read_steadily)
    reader.start()
    try:
        os.kill(old, signal.SIGKILL)
        eventually(lambda: api_leader(launched) not in (None, old), 10, "a new API")
        eventually(lambda: answers[-1][1] == 200, 10, "the new API answering")
        back = len(answers)
        eventually(lambda: len(answers) > back + 20, 10, "reads after the restart")
    finally:
        done.set()
        reader.join(10)
    assert {a for _, a in answers} <= {200, "refused"}
    refused = [t for t, a in answers if a == "refused"]
    assert not refused or refused[-1] - refused[0] < 5, refused[-1] - refused[0]
    assert [a for _, a in answers[-20:]] == [200] * 20
    exits = [r for r in launched.records() if r.get("event") == "process exited; restarting"]
    assert [(r["service"], r["signal"]) for r in exits] == [("api", "SIGKILL")]


def readme_first_requests() -> list[tuple[str, list[str]]]:
    """The commands of the README's first requests ("In another terminal:"), each with
    the output the README shows for it."""
    text = (PROJECT_DIR / "README.md").read_text()
    block = text.split("In another terminal:", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    session: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            session.append((line[2:], []))
        else:
            session[-1][1].append(line)
    return session


def _countdown(lines: list[str]) -> list[str]:
    """Freshness counts down: ``max-age`` and ``ttl`` as a shape, not a number."""
    return [re.sub(r"(max-age|ttl)=\d+", r"\1=N", line) for line in lines]


def test_the_readme_s_first_requests_answer_as_it_shows(launched: Launched):
    """Run against ``make run`` (its launcher), each curl of the README prints what the
    README shows, the views' bodies exactly."""
    session = readme_first_requests()
    assert len(session) == 3
    for command, shown in session:
        run = command.replace("http://127.0.0.1:8080", launched.api)
        out = subprocess.run(["bash", "-c", run], capture_output=True, text=True, timeout=30,
                             check=False).stdout
        assert _countdown(out.splitlines()) == _countdown(shown), command


def test_the_status_page_shows_make_run_s_upstreams_and_follows_the_load(launched: Launched):
    """With ADMIN_TOKEN, ``make run`` names the status page; it shows both upstreams
    answering, the hit ratio, Redis memory, workers and beat, and its figures follow the
    views read."""
    page = launched.started("status page")
    assert page["url"] == f"{launched.api}/admin/" and page["login"] == "ADMIN_TOKEN"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    html = requests.get(page["url"], headers=auth, timeout=10)
    assert html.status_code == 200
    assert re.findall(r'data-upstream="(\w+)" data-state="(\w+)"', html.text) == [
        ("c42", "answering"), ("github", "answering")]
    for card in ("hit-ratio", "stale", "misses", "redis", "workers", "beat"):
        assert f'data-card="{card}"' in html.text

    def status() -> dict:
        return requests.get(f"{launched.api}/admin/status", headers=auth, timeout=10).json()

    before = status()["cache"]["answers_last_hour"]
    for _ in range(4):
        assert requests.get(f"{launched.api}{VIEW}/team-standup/", timeout=10).ok
    eventually(lambda: status()["cache"]["answers_last_hour"] >= before + 4, 15,
               "the reads counted (each API process adds its counts every 5 s)")
    figures = status()
    assert figures["cache"]["hit_ratio"] > 0
    assert figures["health"]["workers"]["ok"] and figures["health"]["beat"]["ok"]
    assert figures["redis"]["used_memory_bytes"] > 0
