"""An upstream's request budget in Redis: a token bucket shared by every worker, and the
rate limit the upstream last reported. The rates come from shared/policy/budget.py."""

from __future__ import annotations

import redis

from shared.policy.budget import capacity
from shared.store.keys import Keys

# A virtual schedule (GCRA): "tat" is when the requests granted so far will have been
# paid for at the rate. A request goes if, with its cost added, tat is at most the burst
# ahead of now. Otherwise its slot is reserved for when it will be, tat moves on, and the
# resource's reservation is kept: when it comes back then it goes without paying again,
# so a costly refresh (many pages) is never starved by cheap ones.
# Misses have a bucket of their own in the same hash ("miss_tat"), filled at their share
# of the rate: a miss over it is refused at once, without a reservation and without
# moving the schedule (a refused miss costs nothing), and what a miss spends is also
# charged to the refreshes' bucket (forced), so refreshes make room for it.
# KEYS[1]: the budget hash. ARGV: now (ms), ms a request costs (1 / rate), burst (ms),
# cost (requests), force (1: spend regardless, into debt: corrections), resource,
# bucket ("tat", or "miss_tat": no reservations). Returns the ms to wait (0: go).
_SPEND = """
local now, per, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, force, mine = tonumber(ARGV[4]), ARGV[5] == '1', 'r:' .. ARGV[6]
local bucket = ARGV[7]
local reserving = bucket == 'tat'
local reserved = reserving and tonumber(redis.call('HGET', KEYS[1], mine))
if reserved and not force then
  if reserved <= now then
    redis.call('HDEL', KEYS[1], mine)
    return 0
  end
  return reserved - now
end
local tat = math.max(tonumber(redis.call('HGET', KEYS[1], bucket)) or now, now)
local after = math.max(tat + cost * per, now)
if force or after - now <= burst then
  redis.call('HSET', KEYS[1], bucket, tostring(after))
  return 0
end
local start = math.ceil(after - burst)
if not reserving then
  return start - now
end
redis.call('HSET', KEYS[1], bucket, tostring(after))
redis.call('HSET', KEYS[1], mine, tostring(start))
return start - now
"""


class UpstreamBudget:
    """Each upstream's request budget in Redis: the buckets refreshes and misses spend
    from, and the limit the upstream last reported."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._spend = client.register_script(_SPEND)

    def spend(self, upstream: str, resource: str, cost: float, rate: float, now: float,
              force: bool = False, miss: bool = False) -> float:
        """Spend ``cost`` requests of the budget filled at ``rate`` a second for a
        refresh of ``resource``: 0 to go now, else the seconds until its reserved turn.
        ``force`` spends regardless (a miss's requests; a correction, negative for a
        refund). ``miss``: from the misses' bucket (``rate`` is their share): 0 to go,
        else the seconds until it would go, nothing spent or reserved."""
        if rate <= 0:
            return 0.0 if force else float("inf")
        wait_ms = self._spend(keys=[self.keys.budget(upstream)], args=[
            int(now * 1000), repr(1000 / rate), repr(capacity(rate) / rate * 1000),
            repr(cost), 1 if force else 0, resource, "miss_tat" if miss else "tat"])
        return int(wait_ms) / 1000

    def observe(self, upstream: str, remaining: int, reset_at: float) -> None:
        """What the upstream said remains of its rate limit, and when it resets."""
        self.redis.hset(self.keys.budget(upstream),
                        mapping={"remaining": remaining, "reset_at": repr(reset_at)})

    def observed(self, upstream: str) -> tuple[int, float] | None:
        """The rate limit the upstream last reported (remaining, reset at), if any."""
        remaining, reset_at = self.redis.hmget(self.keys.budget(upstream),
                                               ["remaining", "reset_at"])
        if remaining is None or reset_at is None:
            return None
        return int(remaining), float(reset_at)
