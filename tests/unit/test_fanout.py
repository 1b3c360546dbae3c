"""Refreshes at once in one worker: a batch runs on its upstream's threads, at most its
max_in_flight at once, with a bounded backlog; the tick's batches keep one upstream each."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from worker.fanout import BACKLOG, BATCH, WINDOW, Fanout, batches


class Gate:
    """Work that blocks until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = self.peak = 0
        self.started = threading.Semaphore(0)

    def __call__(self, job: str) -> str:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.started.release()
        assert self.release.wait(10)
        with self.lock:
            self.running -= 1
        return job.upper()


def test_a_batch_runs_at_most_max_in_flight_at_once_and_returns_in_order():
    fanout, gate = Fanout(), Gate()
    jobs = [f"r{i}" for i in range(7)]
    with ThreadPoolExecutor(1) as caller:
        done = caller.submit(fanout.run, "c42", 3, jobs, gate)
        for _ in range(3):
            assert gate.started.acquire(timeout=5)
        assert not gate.started.acquire(timeout=0.2)  # the fourth waits for a thread
        assert fanout.pending("c42") == 7
        gate.release.set()
        results, handed_back = done.result(timeout=10)
    assert results == [job.upper() for job in jobs] and handed_back == []
    assert gate.peak == 3 and fanout.pending("c42") == 0


def test_past_its_backlog_an_upstream_hands_jobs_back_and_others_are_not_held():
    fanout, slow = Fanout(), Gate()
    size = 2
    with ThreadPoolExecutor(2) as callers:
        first = callers.submit(fanout.run, "slow", size, [f"a{i}" for i in range(5)], slow)
        for _ in range(size):
            assert slow.started.acquire(timeout=5)
        # 5 of BACKLOG * size = 8 are taken: 3 more fit, the rest are handed back.
        second = callers.submit(fanout.run, "slow", size, [f"b{i}" for i in range(6)], slow)
        # Another upstream's batch runs meanwhile on threads of its own.
        assert fanout.run("fast", size, ["x", "y"], str.upper) == (["X", "Y"], [])
        slow.release.set()
        assert first.result(timeout=10)[1] == []
        taken, handed_back = second.result(timeout=10)
    assert BACKLOG * size == 8
    assert taken == ["B0", "B1", "B2"] and handed_back == ["b3", "b4", "b5"]


def test_an_error_in_work_is_raised_once_every_job_has_ended():
    fanout, ended = Fanout(), []

    def work(job: str) -> str:
        if job == "bad":
            raise RuntimeError("boom")
        ended.append(job)
        return job

    with pytest.raises(RuntimeError, match="boom"):
        fanout.run("c42", 2, ["a", "bad", "c"], work)
    assert sorted(ended) == ["a", "c"] and fanout.pending("c42") == 0


def test_a_new_size_takes_a_new_pool_and_shutdown_waits_for_running_work():
    fanout, gate = Fanout(), Gate()
    assert fanout.run("c42", 1, ["a"], str.upper) == (["A"], [])
    with ThreadPoolExecutor(2) as callers:
        running = callers.submit(fanout.run, "c42", 2, ["b", "c"], gate)
        for _ in range(2):
            assert gate.started.acquire(timeout=5)  # two at once: the new size holds
        stopping = callers.submit(fanout.shutdown)
        assert not stopping.done()
        gate.release.set()
        stopping.result(timeout=10)
        assert running.result(timeout=10) == (["B", "C"], [])


@pytest.mark.parametrize(("due", "expected"), [
    ([], []),
    ([("c42:event:a", 1.0), ("github:org:x", None), ("c42:subscriptions:a", 2.0)],
     [("c42", [("c42:event:a", 1.0), ("c42:subscriptions:a", 2.0)]),
      ("github", [("github:org:x", None)])]),
    ([(f"c42:event:{i}", float(i)) for i in range(BATCH + 1)],
     [("c42", [(f"c42:event:{i}", float(i)) for i in range(BATCH)]),
      ("c42", [(f"c42:event:{BATCH}", float(BATCH))])]),
])
def test_claimed_resources_go_in_batches_of_one_upstream(due, expected):
    assert batches(due) == expected


def test_refreshes_finished_a_second_are_counted_over_the_window():
    fanout = Fanout()
    assert fanout.per_second("c42") == 0
    results, handed_back = fanout.run("c42", 5, [f"r{i}" for i in range(20)], str.upper)
    assert len(results) == 20 and handed_back == []
    assert fanout.per_second("c42") == 20 / WINDOW
    assert fanout.per_second("github") == 0


def test_refreshes_handed_back_come_due_behind_those_handed_back_before():
    fanout = Fanout()
    first = fanout.due_again("c42", 3, 1000.0)
    second = fanout.due_again("c42", 2, 1000.0)
    assert first == pytest.approx([1001.0, 1002.0, 1003.0])  # one a second: none finished
    assert second == pytest.approx([1004.0, 1005.0])
    assert fanout.due_again("github", 1, 1000.0) == pytest.approx([1001.0])
