"""Redis refusing writes: out of memory (``maxmemory`` with ``noeviction``), or read-only
(a replica, as the old master is during a failover). Clear answers, no dead process.

Hits keep being served (recording a read is best effort), a miss that cannot store
answers 503 (``store_full`` / ``store_unavailable``), and the worker and beat stay up and
carry on once Redis takes writes again.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from api.app import app_from_settings
from demo.wsgi import threaded_wsgi_server
from launcher.services import free_port
from shared.config.settings import load_settings
from shared.errors import StoreFull
from shared.queue import FETCH_TASK, celery_app
from shared.store.flights import Flights, Outcome
from shared.store.keys import Keys
from tests.harness import Stack
from tests.helpers import VIEW, eventually, expected, get

PREFIX = "cpfull"
JUNK = "junk-not-cachedproxy"
COLD_EVENTS = [f"cold-{i}" for i in range(40)]


@dataclass
class FullStack:
    api: str
    redis: redis.Redis
    worker: subprocess.Popen
    beat: subprocess.Popen
    env: dict[str, str]
    logs: Path

    def fill(self) -> None:
        """Write junk until Redis refuses writes."""
        i = 0
        while True:
            try:
                self.redis.set(f"{JUNK}:{i}", "x" * 2000)
            except redis.exceptions.OutOfMemoryError:
                break
            i += 1
        for j in range(2000):  # top it up with small keys, right to the limit
            with contextlib.suppress(redis.exceptions.OutOfMemoryError):
                self.redis.set(f"{JUNK}:small:{j}", "y" * 50)

    def make_room(self) -> None:
        for key in self.redis.scan_iter(f"{JUNK}:*", count=1000):
            self.redis.delete(key)


@pytest.fixture
def full_stack(env, demo, tmp_path: Path) -> Iterator[FullStack]:
    """A Redis capped at 10 MB with noeviction, a worker and beat on it, and the API."""
    with Stack({**env, "KEY_PREFIX": PREFIX, "REFRESH_TICK_INTERVAL": "0.5"},
               tmp_path) as processes:
        url = processes.redis_server("--maxmemory", "10mb", "--maxmemory-policy",
                                     "noeviction")
        beat = processes.beat()
        worker = processes.worker("full")
        for event in COLD_EVENTS:
            demo.upstream.put_event(event, f"Event {event}", ["Ada"])
        # A miss whose task message the full broker could not hand to the worker waits
        # out its timeout (504): keep that short here.
        settings = load_settings(processes.env).replace(api={"miss_wait_timeout": 2.0})
        server = threaded_wsgi_server(app_from_settings(settings), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield FullStack(f"http://127.0.0.1:{server.server_address[1]}",
                            redis.Redis.from_url(url), worker, beat, processes.env, tmp_path)
        finally:
            server.shutdown()
            server.server_close()


def test_full_redis_serves_hits_refuses_misses_and_nothing_dies(full_stack: FullStack):
    """1,000 mixed requests against a full Redis: hits 200, misses 503 (or 504 when
    the task was lost on its way), 0 × 500; worker and beat stay up, and once Redis has
    room a miss is fetched."""
    warm = ["launch-party", "team-standup", "board-meeting"]
    for event in warm:
        assert get(f"{full_stack.api}{VIEW}/{event}/").json() == expected(event)
    full_stack.fill()
    rng = random.Random(7)
    plan = [rng.choice(warm) if rng.random() < 0.5 else rng.choice(COLD_EVENTS)
            for _ in range(1000)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda e: (e, requests.get(f"{full_stack.api}{VIEW}/{e}/", timeout=15)), plan))
    by_kind: dict[tuple[bool, int], int] = {}
    for event, r in answers:
        by_kind[(event in warm, r.status_code)] = by_kind.get((event in warm, r.status_code), 0) + 1
        if r.status_code != 200:
            # store_unavailable: the broker connection of a concurrent publisher broke
            # on the refused write; it is retried on the next request.
            assert (r.status_code, r.json()["error"]["code"]) in {
                (503, "store_full"), (503, "store_unavailable"), (504, "fetch_timeout")}, r.text
    assert set(by_kind) <= {(True, 200), (False, 200), (False, 503), (False, 504)}, by_kind
    assert by_kind.get((False, 503), 0) > 0  # the cold misses met the full store
    # The tick and the refreshes kept failing meanwhile; nothing died of it.
    assert full_stack.worker.poll() is None and full_stack.beat.poll() is None
    full_stack.make_room()
    event = COLD_EVENTS[0]
    eventually(lambda: get(f"{full_stack.api}{VIEW}/{event}/").status_code == 200, 10,
               "a miss works again")
    assert full_stack.worker.poll() is None and full_stack.beat.poll() is None


def test_worker_consuming_from_a_full_redis_stays_up(full_stack: FullStack):
    """Tasks waiting in the queue when Redis fills up: taking them fails, the worker
    keeps running (no 'Unrecoverable error'), and works normally once there is room."""
    os.kill(full_stack.worker.pid, signal.SIGSTOP)  # its consumer takes nothing meanwhile
    try:
        queue = celery_app(load_settings(full_stack.env))
        for event in COLD_EVENTS[:5]:
            queue.send_task(FETCH_TASK, args=(f"c42:event:{event}", "no-waiter"))
        full_stack.fill()
    finally:
        os.kill(full_stack.worker.pid, signal.SIGCONT)
    log = full_stack.logs / "full.log"
    eventually(lambda: "OutOfMemoryError" in log.read_text()
               or "command not allowed" in log.read_text(), 15, "the worker met the full store")
    assert full_stack.worker.poll() is None
    assert "Unrecoverable error" not in log.read_text()
    full_stack.make_room()
    event = COLD_EVENTS[-1]
    eventually(lambda: get(f"{full_stack.api}{VIEW}/{event}/").status_code == 200, 20,
               "the worker fetches again")
    assert full_stack.worker.poll() is None


def test_outcome_reaches_waiters_when_redis_is_full(full_stack: FullStack):
    """A fetch that finishes after Redis filled up still hands its outcome to the
    requests already waiting (they hear it now rather than waiting out their timeout)."""
    flights = Flights(full_stack.redis, Keys(PREFIX))
    flight = flights.join("c42:event:cold-1")
    assert flight.leader
    waiting = redis.Redis.from_url(full_stack.env["REDIS_URL"], socket_timeout=20)
    with ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(flights.wait, flight, 15.0, waiting)
        eventually(lambda: full_stack.redis.info("clients")["blocked_clients"] >= 1, 5,
                   "the waiter is blocked on the result key")
        full_stack.fill()
        flights.finish(flight, Outcome.failed(StoreFull("cache store is full")))
        outcome = waiter.result(timeout=5)
    assert outcome is not None and outcome.code == "store_full"


def test_read_only_redis_serves_hits_and_nothing_dies(full_stack: FullStack):
    """Redis turned into a replica (read-only, as the old master is during a failover):
    hits 200, misses 503 store_unavailable, beat logs and carries on, worker and beat
    stay up; once it is a master again, misses work."""
    warm = "team-standup"
    assert get(f"{full_stack.api}{VIEW}/{warm}/").json() == expected(warm)
    # A replica of a master that is not there keeps its data and refuses writes.
    full_stack.redis.replicaof("127.0.0.1", free_port())
    try:
        eventually(lambda: full_stack.redis.info("replication")["role"] == "slave", 5,
                   "read-only replica")
        hits = [requests.get(f"{full_stack.api}{VIEW}/{warm}/", timeout=15) for _ in range(20)]
        assert {r.status_code for r in hits} == {200}
        r = requests.get(f"{full_stack.api}{VIEW}/{COLD_EVENTS[2]}/", timeout=15)
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
        # Beat cannot enqueue its tick into a read-only broker: it says so and goes on.
        log = full_stack.logs / "beat.log"
        eventually(lambda: "read only replica" in log.read_text(), 10,
                   "beat met the read-only store")
        assert full_stack.worker.poll() is None and full_stack.beat.poll() is None
    finally:
        full_stack.redis.replicaof("no", "one")
    eventually(lambda: get(f"{full_stack.api}{VIEW}/{COLD_EVENTS[3]}/").status_code == 200,
               20, "misses work once Redis is a master again")
    assert full_stack.worker.poll() is None and full_stack.beat.poll() is None
