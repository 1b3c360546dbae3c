"""Many refreshes at once in one worker process: a batch's resources run on threads of
their upstream, at most its ``max_in_flight`` at once.

An upstream request in flight costs a thread waiting on a socket, not a process. A batch
waits for its own refreshes, so a batch done in Flower is refreshes done, and a warm
shutdown (Ctrl-C) lets them finish. At most ``BACKLOG`` × max_in_flight refreshes wait
for or run on one upstream's threads; beyond that a batch hands resources back (the task
puts them back on the schedule a little later), so a slow upstream keeps a bounded queue
and never holds the task threads that the refreshes of the others need.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from shared.policy.timing import handed_back_at

Job = TypeVar("Job")
Result = TypeVar("Result")

BACKLOG = 4  # refreshes an upstream may have queued or running, per max_in_flight
BATCH = 50  # resources of one upstream in one refresh_batch message, at most
WINDOW = 10.0  # seconds over which an upstream's refreshes finished a second are counted


class Fanout:
    """Per upstream, a pool of threads sized to its max_in_flight (resized when the
    setting changes: running refreshes finish on the old pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}
        self._pending: dict[str, int] = {}
        self._finished: dict[str, deque[float]] = {}  # when refreshes ended (monotonic)
        self._handed_back: dict[str, float] = {}  # when the last handed back comes due

    def run(self, upstream: str, size: int, jobs: Sequence[Job],
            work: Callable[[Job], Result]) -> tuple[list[Result], list[Job]]:
        """``work(job)`` for each job on the upstream's ``size`` threads: the results (in
        the order of the jobs taken), and the jobs handed back because its backlog is
        full. ``work`` must not raise; if it does, the exception is raised here once every
        job taken has ended."""
        def counted(job: Job) -> Result:
            try:
                return work(job)
            finally:  # before its future is done: whoever waits on it sees it counted
                with self._lock:
                    self._pending[upstream] -= 1
                    self._finished.setdefault(upstream, deque()).append(time.monotonic())

        futures: list[Future[Result]] = []
        with self._lock:
            pool = self._pool(upstream, size)
            room = max(BACKLOG * size - self._pending.get(upstream, 0), 0)
            taken, handed_back = list(jobs[:room]), list(jobs[room:])
            self._pending[upstream] = self._pending.get(upstream, 0) + len(taken)
            futures = [pool.submit(counted, job) for job in taken]
        errors = [f.exception() for f in futures]  # waits for every one
        for error in errors:
            if error is not None:
                raise error
        return [f.result() for f in futures], handed_back

    def pending(self, upstream: str) -> int:
        """Refreshes of the upstream queued or running now."""
        with self._lock:
            return self._pending.get(upstream, 0)

    def per_second(self, upstream: str) -> float:
        """Refreshes of the upstream finished a second, over the last WINDOW seconds."""
        with self._lock:
            return self._per_second(upstream)

    def due_again(self, upstream: str, count: int, now: float) -> list[float]:
        """When ``count`` refreshes handed back come due again (epoch seconds, ``now``
        being the time): behind the upstream's backlog and those handed back before, at
        the rate it is refreshed (shared/policy/timing.handed_back_at)."""
        with self._lock:
            times = handed_back_at(count, self._pending.get(upstream, 0),
                                   self._per_second(upstream), now,
                                   self._handed_back.get(upstream, 0.0))
            if times:
                self._handed_back[upstream] = times[-1]
            return times

    def _per_second(self, upstream: str) -> float:
        finished = self._finished.get(upstream, deque())
        while finished and finished[0] < time.monotonic() - WINDOW:
            finished.popleft()
        return len(finished) / WINDOW

    def shutdown(self) -> None:
        """Wait for every refresh running or queued (a worker's warm shutdown)."""
        with self._lock:
            pools = [pool for _, pool in self._pools.values()]
            self._pools.clear()
        for pool in pools:
            pool.shutdown(wait=True)

    def _pool(self, upstream: str, size: int) -> ThreadPoolExecutor:
        current = self._pools.get(upstream)
        if current is not None and current[0] == size:
            return current[1]
        if current is not None:
            current[1].shutdown(wait=False)  # its running refreshes finish
        pool = ThreadPoolExecutor(size, thread_name_prefix=f"fetch-{upstream}")
        self._pools[upstream] = (size, pool)
        return pool


def batches(due: Sequence[tuple[str, float | None]]
            ) -> list[tuple[str, list[tuple[str, float | None]]]]:
    """Claimed (resource, due) pairs as batches of one upstream each, at most BATCH long,
    in the order claimed."""
    by_upstream: dict[str, list[tuple[str, float | None]]] = {}
    for resource, when in due:
        # The name's first part, not the registry's upstream_of: a resource of a kind
        # since taken out of the catalogue still goes (and fails alone), not the tick.
        by_upstream.setdefault(resource.partition(":")[0], []).append((resource, when))
    return [(upstream, pairs[i:i + BATCH]) for upstream, pairs in by_upstream.items()
            for i in range(0, len(pairs), BATCH)]
