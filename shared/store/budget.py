"""An upstream's request budget in Redis: a token bucket shared by every worker, and the
rate limit the upstream last reported. The rates come from shared/policy/budget.py."""

from __future__ import annotations

import redis

from shared.policy.budget import capacity
from shared.store.keys import Keys

# KEYS[1]: the budget hash. ARGV: now (ms), rate (requests a ms), capacity, cost,
# force (1: spend even into debt, for misses and corrections). Returns the ms to wait
# (0: spent).
_SPEND = """
local now, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local cap, cost = tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or cap
local at = tonumber(state[2]) or now
tokens = math.min(cap, tokens + math.max(now - at, 0) * rate)
local wait = 0
if tokens >= cost or ARGV[5] == '1' then
  tokens = tokens - cost
else
  wait = math.ceil((cost - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 7200000)
return wait
"""


class UpstreamBudget:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._spend = client.register_script(_SPEND)

    def spend(self, upstream: str, cost: float, rate: float, now: float,
              force: bool = False) -> float:
        """Take ``cost`` requests from the bucket filled at ``rate`` a second; returns
        the seconds to wait instead (0: taken). ``force`` takes them regardless."""
        if rate <= 0:
            return 0.0 if force else float("inf")
        wait_ms = self._spend(keys=[self.keys.budget(upstream)], args=[
            int(now * 1000), repr(rate / 1000), repr(capacity(rate)), repr(cost),
            1 if force else 0])
        return int(wait_ms) / 1000

    def observe(self, upstream: str, remaining: int, reset_at: float) -> None:
        """What the upstream said remains of its rate limit, and when it resets."""
        self.redis.hset(self.keys.budget(upstream),
                        mapping={"remaining": remaining, "reset_at": repr(reset_at)})

    def observed(self, upstream: str) -> tuple[int, float] | None:
        remaining, reset_at = self.redis.hmget(self.keys.budget(upstream),
                                               ["remaining", "reset_at"])
        if remaining is None or reset_at is None:
            return None
        return int(remaining), float(reset_at)
