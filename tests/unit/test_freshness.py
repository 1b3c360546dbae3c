"""Freshness within a budget: the change-rate estimator, the model's freshness, the
optimal allocation and the plan (shared/policy/freshness.py), and how checks are kept
(shared/store/freshness.py)."""

from __future__ import annotations

import math
import random

import pytest

import shared.policy.freshness as freshness_module
from shared.policy.freshness import (
    PLAN_SHARE,
    READ_TIME_CONSTANT,
    WINDOW,
    Check,
    Item,
    Limits,
    Observed,
    allocate,
    change_rate,
    freshness,
    observe,
    plan,
    predicted_freshness,
    quantiles,
    read_rate,
    spending,
)
from shared.policy.timing import ReadThrottle, mean_period
from shared.store.freshness import Checks
from shared.telemetry.metrics import plan_metrics


@pytest.mark.parametrize("rate, interval, expected", [
    (0.0, 100.0, 1.0),  # never changes: always fresh
    (0.1, 0.0, 1.0),  # checked continuously
    (0.1, 10.0, (1 - math.exp(-1)) / 1),  # x = 1
    (1 / 60, 24.0, (1 - math.exp(-0.4)) / 0.4),
    (1.0, 1000.0, 0.001),  # far too slow: fresh only just after each check
])
def test_freshness_is_cho_and_garcia_molinas(rate: float, interval: float,
                                             expected: float) -> None:
    assert freshness(rate, interval) == pytest.approx(expected, rel=1e-9)


def test_the_prior_alone_is_ln2_over_the_ttl() -> None:
    assert change_rate((), 30.0) == pytest.approx(math.log(2) / 30, rel=1e-6)


def test_the_estimate_solves_the_likelihood_equation() -> None:
    """Σ_changed t / (e^(λt) − 1) = Σ_unchanged t, over the checks and the prior (its
    changed check weighing (n + 1)^-1.5 after n checks)."""
    history = [Check(10, True), Check(20, False), Check(15, True), Check(40, False)]
    rate = change_rate(history, 30.0)
    changed, unchanged = [(10, 1), (15, 1), (30, 5 ** -1.5)], 20 + 40 + 30
    assert sum(w * t / math.expm1(rate * t) for t, w in changed) == pytest.approx(
        unchanged, rel=1e-6)


@pytest.mark.parametrize("true_rate, interval", [
    (1 / 10, 24.0),  # changes most checks
    (1 / 60, 24.0),
    (1 / 600, 100.0),  # rarely
])
def test_checks_of_a_poisson_source_estimate_its_rate(true_rate: float, interval: float
                                                      ) -> None:
    """Over many simulated windows, the estimate's median is within 35 % of the truth
    (a window is only WINDOW checks; the prior pulls towards ln 2 / TTL)."""
    rng = random.Random(1)
    estimates = []
    for _ in range(300):
        history: tuple[Check, ...] = ()
        for _ in range(WINDOW):
            t = interval * rng.uniform(0.8, 1.2)  # irregular checks
            history = observe(history, Check(t, rng.random() > math.exp(-true_rate * t)))
        estimates.append(change_rate(history, 30.0))
    median = sorted(estimates)[len(estimates) // 2]
    assert median == pytest.approx(true_rate, rel=0.35)


def test_a_source_that_never_changes_gets_a_rate_falling_with_each_check() -> None:
    history: tuple[Check, ...] = ()
    rates = []
    for _ in range(WINDOW):
        history = observe(history, Check(30.0, False))
        rates.append(change_rate(history, 30.0))
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0] / 5
    assert rates[-1] > 0


def test_the_window_forgets_old_checks() -> None:
    history: tuple[Check, ...] = tuple(Check(30.0, True) for _ in range(WINDOW))
    assert len(observe(history, Check(30.0, False))) == WINDOW
    for _ in range(WINDOW):
        history = observe(history, Check(30.0, False))
    assert history == tuple(Check(30.0, False) for _ in range(WINDOW))


def _items(*specs: tuple[float, float]) -> list[Item]:
    return [Item(rate, weight, 1.0, 4.0, 480.0) for rate, weight in specs]


def test_a_budget_that_pays_for_the_shortest_intervals_gets_them() -> None:
    items = _items((0.1, 1.0), (0.0, 1.0))
    assert allocate(items, 0.5) == [4.0, 4.0]


def test_a_budget_below_the_longest_intervals_still_keeps_them() -> None:
    items = _items((0.1, 1.0), (0.01, 1.0))
    assert allocate(items, 0.001) == [480.0, 480.0]


def test_the_allocation_spends_the_budget_and_beats_a_uniform_clock() -> None:
    rng = random.Random(3)
    items = [Item(rng.choice([0.1, 1 / 60, 0.0]), rng.paretovariate(1.0), rng.choice([1, 2]),
                  4.0, 480.0) for _ in range(80)]
    budget = 2.0
    intervals = allocate(items, budget)
    assert spending(items, intervals) == pytest.approx(budget, rel=1e-3)
    assert all(4.0 <= i <= 480.0 for i in intervals)
    uniform = sum(i.cost for i in items) / budget
    assert predicted_freshness(items, intervals) > predicted_freshness(
        items, [uniform] * len(items)) + 0.02


def test_no_other_allocation_at_the_same_spend_is_fresher() -> None:
    """Moving budget between any two items from the optimum loses freshness."""
    items = _items((0.1, 5.0), (1 / 60, 2.0), (1 / 60, 0.2), (1 / 300, 1.0), (0.0, 3.0))
    best = allocate(items, 0.3)
    value = predicted_freshness(items, best)
    for a in range(len(items)):
        for b in range(len(items)):
            if a == b:
                continue
            moved = list(best)
            delta = 0.002  # requests a second moved from b to a
            if 1 / moved[b] - delta <= 0:
                continue
            moved[a] = 1 / (1 / moved[a] + delta)
            moved[b] = 1 / (1 / moved[b] - delta)
            if not all(4.0 <= m <= 480.0 for m in moved):
                continue  # past a bound: not an allocation the budget may make
            assert predicted_freshness(items, moved) <= value + 1e-9


@pytest.mark.parametrize("specs, order, longest", [
    # Read alike: the one changing every minute gets more than the one changing every
    # ten minutes; one changing every second (hopeless at this budget) and one that never
    # changes get the longest.
    ([(1 / 60, 1.0), (1 / 600, 1.0), (1.0, 1.0), (0.0, 1.0)], [0, 1, 2], [2, 3]),
    # Changing alike: the one read most gets the shortest interval; the one read least
    # is not worth this budget's requests.
    ([(1 / 60, 10.0), (1 / 60, 1.0), (1 / 60, 0.1)], [0, 1, 2], [2]),
])
def test_what_gets_refreshed_more_often(specs: list[tuple[float, float]],
                                        order: list[int], longest: list[int]) -> None:
    items = _items(*specs)
    intervals = allocate(items, 0.05)
    ranked = [intervals[i] for i in order]
    assert ranked == sorted(ranked) and ranked[0] < ranked[-1]
    assert [i for i, interval in enumerate(intervals) if interval == 480.0] == longest


def test_a_plan_keeps_the_ttl_while_the_budget_pays_for_it() -> None:
    limits = Limits(ttl=30, ratio=0.8, min_ttl=5, max_age=600)
    observed = [Observed(0.1, 1.0, 1), Observed(0.0, 1.0, 1)]
    clock = 2 / (24 * 0.95)  # two resources every 24 s, up to 10 % early at random
    today = plan(observed, limits, None)
    assert today.ttls is None and today.spending == pytest.approx(clock)
    assert today.freshness == pytest.approx((freshness(0.1, 24 * 0.95) + 1) / 2)
    assert plan(observed, limits, clock / PLAN_SHARE).ttls is None
    made = plan(observed, limits, clock / PLAN_SHARE * 0.9)
    assert made.ttls is not None and all(5 <= t <= 600 for t in made.ttls)
    assert made.spending == pytest.approx(clock * 0.9, rel=1e-3)


def test_a_plan_keeps_within_min_ttl_and_max_age() -> None:
    limits = Limits(ttl=30, ratio=0.8, min_ttl=10, max_age=120)
    observed = [Observed(1 / 60, 50.0, 1)] + [Observed(0.0, 0.0, 1)] * 20
    made = plan(observed, limits, 0.5)  # the TTL clock would need 0.875 a second
    assert made.ttls is not None
    assert made.ttls[0] == pytest.approx(10) and max(made.ttls) == pytest.approx(120)


def test_a_min_ttl_above_the_ttl_is_the_ttl() -> None:
    limits = Limits(ttl=30, ratio=0.8, min_ttl=60, max_age=600)
    made = plan([Observed(0.5, 100.0, 1), Observed(0.0, 0.0, 1)], limits, 0.01)
    assert made.ttls is not None and min(made.ttls) >= 30 * 0.999


def test_read_rates_decay_with_the_time_constant() -> None:
    assert read_rate(600.0, 1000.0, 1000.0) == pytest.approx(600 / READ_TIME_CONSTANT)
    assert read_rate(600.0, 1000.0, 1000.0 + READ_TIME_CONSTANT) == pytest.approx(
        math.exp(-1) * 600 / READ_TIME_CONSTANT)
    assert read_rate(600.0, 1000.0, 900.0) == read_rate(600.0, 1000.0, 1000.0)


def test_quantiles_by_nearest_rank() -> None:
    assert quantiles([]) == []
    assert quantiles([5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0]) == [2.0, 6.0, 10.0]


def test_checks_are_stored_and_read_back() -> None:
    checks = Checks(3, 1234.5, (Check(24.0, True), Check(30.5, False)))
    assert Checks.decode(checks.encode()) == checks
    assert Checks.decode(checks.encode().encode()) == checks  # as Redis returns it
    assert Checks.decode(None) == Checks() == Checks.decode("garbled")


def test_the_read_throttle_counts_every_read_a_record_stands_for() -> None:
    throttle = ReadThrottle()
    assert throttle.due(["a", "b"], 0, 10) == ["a", "b"]
    assert throttle.take(["a", "b"]) == [1, 1]
    for _ in range(5):
        assert not throttle.pending(["a"], 1.0)  # hits served meanwhile
    assert throttle.due(["a", "b"], 2.0, 10) == []  # a read on a thread, not yet due
    assert throttle.pending(["a"], 10.0)  # due: the hit goes to record it
    assert throttle.due(["a"], 10.0, 10) == ["a"]
    assert throttle.take(["a"]) == [7]
    assert throttle.take(["b"]) == [1]  # its one read since, at least one


@pytest.mark.parametrize("x", [1e-7, 1e-4, 0.01, 0.5, 1.0, 3.0, 10.0, 20.0])
def test_the_marginal_gain_is_inverted_where_it_is_needed(x: float) -> None:
    """g is inverted over its whole range (by interpolation; near 0 as √(2y))."""
    assert freshness_module._inverse_gain(freshness_module._gain(x)) == pytest.approx(
        x, rel=2e-3)


@pytest.mark.parametrize("y", [1.0, 1.5, 1 - 1e-30])
def test_a_gain_no_interval_reaches_is_an_infinite_one(y: float) -> None:
    assert freshness_module._inverse_gain(y) == math.inf


def test_dearer_refreshes_come_less_often() -> None:
    cheap, dear = Item(1 / 60, 1.0, 1.0, 4.0, 480.0), Item(1 / 60, 1.0, 3.0, 4.0, 480.0)
    intervals = allocate([cheap, dear] + _items((1 / 60, 1.0)) * 4, 0.1)
    assert intervals[0] < intervals[1] < 480.0


def test_unread_resources_get_the_longest_interval_and_no_budget() -> None:
    items = _items((1 / 60, 1.0), (1 / 60, 0.0), (0.0, 1.0))
    intervals = allocate(items, 0.05)
    assert intervals[1:] == [480.0, 480.0] and intervals[0] < 480.0


def test_the_allocation_depends_on_read_shares_not_on_their_scale() -> None:
    """Reads a second or a thousandth of them: the same intervals."""
    rng = random.Random(5)
    specs = [(rng.choice([0.1, 1 / 60, 1 / 600]), rng.paretovariate(1.0)) for _ in range(30)]
    base = allocate(_items(*specs), 0.3)
    for scale in (1e-6, 1e-3, 1e3):
        scaled = allocate(_items(*((r, w * scale) for r, w in specs)), 0.3)
        assert scaled == pytest.approx(base, rel=1e-3)


def test_a_budget_that_pays_exactly_for_the_longest_intervals_gets_them() -> None:
    items = _items((0.1, 1.0), (0.01, 1.0))
    assert allocate(items, 2 / 480.0) == [480.0, 480.0]


def test_a_change_found_within_a_second_counts() -> None:
    assert change_rate([Check(0.5, True)], 30.0) > change_rate([Check(0.5, False)], 30.0)


def test_a_changed_check_of_no_interval_is_left_out() -> None:
    """Two checks at one instant say nothing of the rate (and divide by nothing)."""
    at_once = [Check(0.0, True), Check(30.0, False)]
    assert change_rate(at_once, 30.0) == change_rate([Check(0.0, False), Check(30.0, False)],
                                                     30.0)


def test_predicted_freshness_of_nothing_read_is_whole() -> None:
    assert predicted_freshness([], []) == 1.0
    assert predicted_freshness(_items((0.1, 0.0)), [100.0]) == 1.0
    assert predicted_freshness(_items((0.1, 0.5)), [10.0]) == freshness(0.1, 10.0)


def test_a_plan_predicts_the_freshness_of_its_own_ttls() -> None:
    limits = Limits(ttl=30, ratio=0.8, min_ttl=5, max_age=600)
    observed = [Observed(0.1, 5.0, 1), Observed(1 / 60, 1.0, 1), Observed(0.0, 1.0, 1)]
    made = plan(observed, limits, 0.05)
    assert made.ttls is not None
    period = mean_period(1.0, 0.8)
    items = [Item(o.rate, o.reads, o.cost, 0, 0) for o in observed]
    assert made.freshness == pytest.approx(
        predicted_freshness(items, [t * period for t in made.ttls]))
    assert 0 < made.freshness < 1


def test_an_unread_resource_counts_as_read_once_per_time_constant() -> None:
    limits = Limits(ttl=30, ratio=0.8, min_ttl=5, max_age=600)
    unread = plan([Observed(1 / 60, 0.0, 1)] * 2 + [Observed(0.0, 1.0, 1)] * 4, limits, 0.1)
    floor = plan([Observed(1 / 60, 1 / READ_TIME_CONSTANT, 1)] * 2
                 + [Observed(0.0, 1.0, 1)] * 4, limits, 0.1)
    assert unread.ttls == floor.ttls and unread.ttls is not None
    assert unread.ttls[0] < 600
    read = plan([Observed(1 / 60, 1.5 / READ_TIME_CONSTANT, 1)] * 2
                + [Observed(0.0, 1.0, 1)] * 4, limits, 0.1)
    assert read.ttls is not None and read.ttls[0] < unread.ttls[0]


def test_the_top_quantile_is_the_largest() -> None:
    assert quantiles([3.0, 1.0, 2.0], (0.0, 1.0)) == [1.0, 3.0]


def test_reads_counted_survive_the_throttle_forgetting_others() -> None:
    throttle = ReadThrottle(size=3)
    throttle.due(["a"], 0.0, 10)
    throttle.due(["b"], 0.0, 1)
    throttle.due(["d"], 0.0, 1)
    throttle.take(["b", "d"])
    for _ in range(3):
        assert not throttle.pending(["a"], 2.0)
    assert throttle.due(["c"], 2.0, 10) == ["c"]  # full: b and d (due) are forgotten
    assert throttle.take(["a", "b", "never-read"]) == [4, 1, 1]


def test_plans_become_gauges_and_a_summary_of_another_shape_is_left_out() -> None:
    """/metrics shows each upstream's plan; a summary the plan task does not write (an
    older or a garbled one) leaves out its gauges rather than failing the scrape."""
    good = {"active": True, "over_budget": False, "resources": 3, "budget_per_s": 2.0,
            "requests_per_s": 1.8, "predicted_freshness": 0.93,
            "change_interval_s": {"0.1": 40.0, "0.5": 3000.0}, "ttl_s": {}}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in plan_metrics({"c42": good, "old": {"active": True},
                                           "garbled": None,
                                           "odd": {**good, "budget_per_s": "y"}})
               for s in family.samples}
    assert samples == {
        ("cachedproxy_plan_active", (("upstream", "c42"),)): 1.0,
        ("cachedproxy_plan_budget_per_second", (("upstream", "c42"),)): 2.0,
        ("cachedproxy_plan_requests_per_second", (("upstream", "c42"),)): 1.8,
        ("cachedproxy_plan_predicted_freshness", (("upstream", "c42"),)): 0.93,
        ("cachedproxy_change_interval_seconds", (("quantile", "0.1"), ("upstream", "c42"))): 40.0,
        ("cachedproxy_change_interval_seconds", (("quantile", "0.5"), ("upstream", "c42"))): 3000.0,
    }
