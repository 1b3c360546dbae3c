"""The one place that builds Redis keys: every key is ``<prefix>:<kind>:<resource>``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Every Redis key of one deployment (its prefix), each named once below."""

    prefix: str

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def entry(self, resource: str) -> str:
        """Hash holding one resource's trimmed data, validators and timestamps."""
        return self._key("entry", resource)

    def locks(self) -> str:
        """Hash of the single-flight locks: resource -> "<flight token> <deadline ms>"."""
        return self._key("locks")

    def result(self, resource: str, token: str) -> str:
        """List holding the outcome of one flight, read by every waiter."""
        return self._key("result", resource, token)

    def results(self) -> str:
        """Sorted set: result list -> when it may be removed (epoch ms, Redis's clock)."""
        return self._key("results")

    def running(self, worker: str) -> str:
        """Hash of the flights one worker (by Celery hostname) is running: token ->
        resource; what it leaves there when killed is failed when it starts again."""
        return self._key("running", worker)

    def schedule(self) -> str:
        """Sorted set: live resource -> when to refresh it next (epoch ms)."""
        return self._key("schedule")

    def reads(self) -> str:
        """Sorted set: resource -> when a client last read it (epoch ms)."""
        return self._key("reads")

    def generations(self) -> str:
        """Hash: resource -> how often it was purged; a fetch stores only if it is
        unchanged since the fetch began, so a purge is never undone by older data. The
        tick drops a resource's count once no flight holds it (Flights.sweep)."""
        return self._key("generations")

    def paced(self) -> str:
        """Hash: resource -> until when (epoch ms) its refresh waits for its upstream's
        budget; stale data is served meanwhile without asking for a refresh."""
        return self._key("paced")

    def checks(self) -> str:
        """Hash: live resource -> "<requests>|<checked at>|<its recent checks>", what its
        change rate is estimated from (shared/store/freshness.py)."""
        return self._key("checks")

    def read_counts(self) -> str:
        """Hash: resource -> "<decayed reads>|<updated, epoch ms>", its read rate."""
        return self._key("readcounts")

    def planned(self) -> str:
        """Hash: live resource -> the TTL (seconds) its upstream's budget plan gives it;
        none: the upstream's TTL."""
        return self._key("planned")

    def plans(self) -> str:
        """Hash: upstream -> JSON summary of its last budget plan (rates, freshness)."""
        return self._key("plans")

    def failures(self) -> str:
        """Hash: resource -> refreshes failed in a row."""
        return self._key("failures")

    def failure_errors(self) -> str:
        """Hash: resource -> its last failed refresh's error, while failures() counts it."""
        return self._key("failure_errors")

    def upstream_health(self, upstream: str) -> str:
        """Hash of a failing upstream: failures in a row, the first one's time and the
        last one's error, next probe (epoch ms)."""
        return self._key("upstream", upstream)

    def budget(self, upstream: str) -> str:
        """Hash of an upstream's request budget: the bucket's tokens and time, and the
        rate limit the upstream last reported (remaining, reset at)."""
        return self._key("budget", upstream)

    def spent(self, upstream: str) -> str:
        """Hash: minute (since the epoch) -> requests made to an upstream in it; minutes
        past the hour are deleted by the plan task (shared/store/status.py)."""
        return self._key("spent", upstream)

    def outcomes(self) -> str:
        """Hash: "<minute>|<view>|<outcome>" -> cache outcomes in that minute (since the
        epoch), added by every API process (api/tally.py); minutes past the hour are
        deleted by the plan task. Like every key but the entries, it has no TTL."""
        return self._key("outcomes")

    def live_status(self) -> str:
        """Hash: upstream -> JSON [live resources, most overdue refresh (s), stalest live
        entry past its freshness (s), when counted], kept by the plan task."""
        return self._key("livestatus")

    def held(self, upstream: str) -> str:
        """Set of resources whose refreshes wait for a failing upstream to answer."""
        return self._key("held", upstream)

    def workers(self) -> str:
        """Sorted set: worker hostname -> its last heartbeat (epoch ms)."""
        return self._key("health", "workers")

    def last_tick(self) -> str:
        """When a tick last claimed refreshes (epoch seconds)."""
        return self._key("health", "tick")

    def rate_limits(self) -> str:
        """Prefix of the rate limiter's keys (the ``limits`` library's moving windows,
        one per client and limit; they expire, and may be evicted: a client's window
        then starts afresh)."""
        return self._key("ratelimit")

    def metrics(self) -> str:
        """Hash of the workers' counters and histogram buckets (shared/telemetry/metrics.py)."""
        return self._key("metrics")

    def celery_prefix(self) -> str:
        """Prefix of the broker's keys (kombu's global_keyprefix)."""
        return self._key("celery") + ":"

    def queue(self, name: str) -> str:
        """The broker's list holding a queue's waiting tasks."""
        return self.celery_prefix() + name

    def pattern(self, kind: str | None = None) -> str:
        """Glob matching every key of this deployment, or of one kind ("entry", "lock")."""
        return self._key(kind, "*") if kind else self._key("*")
