"""How fast refreshes may ask an upstream: its budget and its own reported limit."""

import pytest

from shared.policy.budget import BURST, capacity, refresh_rate


@pytest.mark.parametrize(
    ("budget", "remaining", "reset_in", "rate"),
    [
        (0, None, None, None),  # no budget, nothing reported: no limit
        (3600, None, None, 1.0),  # the budget alone
        (7200, None, None, 2.0),
        (0, 1000, 900.0, 1.0),  # 1000 left for 900 s, 10 % kept for misses
        (3600, 1000, 90.0, 1.0),  # plenty left: the budget is the lower
        (36000, 1000, 900.0, 1.0),  # little left: slower than the budget allows
        (3600, 0, 600.0, 0.0),  # nothing left: nothing until the reset
        (3600, 10, 0.0, 1.0),  # the reset has passed: the report no longer counts
        (3600, 10, -5.0, 1.0),
    ],
)
def test_refresh_rate_is_the_lower_of_budget_and_what_remains(budget, remaining, reset_in,
                                                              rate):
    found = refresh_rate(budget, remaining, reset_in)
    assert found == (None if rate is None else pytest.approx(rate))


@pytest.mark.parametrize(("rate", "size"), [(1.0, BURST), (0.01, 1.0), (10.0, 10 * BURST)])
def test_the_bucket_holds_a_burst_and_at_least_one_request(rate, size):
    assert capacity(rate) == pytest.approx(size)
