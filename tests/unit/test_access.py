"""Who may read and how much: keys, where keys are required, the client's address
behind proxies, rate-limit headers; then the middleware with a stub app."""

from __future__ import annotations

import ipaddress
import json
import re

import pytest
import redis
from limits import WindowStats

from api.access import Access
from api.limits import UNAVAILABLE, Limiter, MissLimit
from shared.config.settings import AccessSettings
from shared.errors import TooManyRequests
from shared.policy.access import (
    SESSION_SECONDS,
    Limit,
    Window,
    client_address,
    identify,
    key_hash,
    keys_required,
    limited_headers,
    new_key,
    open_off_loopback,
    parse_keys,
    parse_networks,
    policy_header,
    same_secret,
    session_value,
    valid_session,
)
from shared.store.keys import Keys
from tests.unit.apptools import call, on_loop

KEY_A, KEY_B = "a" * 40, "b" * 40
LINES = f"web:{key_hash(KEY_A)}, batch:{key_hash(KEY_B)}"


def test_keys_are_configured_by_name_and_hash_and_a_bad_item_is_named_not_shown():
    assert parse_keys(LINES) == {key_hash(KEY_A): "web", key_hash(KEY_B): "batch"}
    assert parse_keys("") == {} and parse_keys(" , ") == {}
    assert parse_keys(f"web:{key_hash(KEY_A)},, batch:{key_hash(KEY_B)},") == parse_keys(LINES)
    for raw, position in [(KEY_A, 1), (f"web:{key_hash(KEY_A).upper()}", 1),
                          (f"web:{key_hash(KEY_A)},{KEY_B}", 2), (f":{key_hash(KEY_A)}", 1),
                          (f"we b:{key_hash(KEY_A)}", 1), (f"web:{key_hash(KEY_A)[:-1]}", 1)]:
        with pytest.raises(ValueError) as refused:
            parse_keys(raw)
        assert f"item {position} " in str(refused.value)
        assert KEY_A not in str(refused.value) and KEY_B not in str(refused.value)


@pytest.mark.parametrize(
    ("authorization", "name"),
    [
        (f"Bearer {KEY_A}", "web"),
        (f"bearer {KEY_B}", "batch"),
        (f"Bearer  {KEY_A} ", "web"),
        (f"Bearer {KEY_A}x", None),
        (f"Basic {KEY_A}", None),
        (KEY_A, None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_a_request_is_identified_by_the_key_it_carries(authorization, name):
    assert identify(authorization, parse_keys(LINES)) == name


def test_a_new_key_is_long_random_and_configures_itself():
    key, line = new_key("web")
    again, _ = new_key("web")
    assert len(key) >= 32 and key != again and line.startswith("web:")
    assert identify(f"Bearer {key}", parse_keys(line)) == "web"
    assert new_key("Web.Front-1")[1].startswith("Web.Front-1:")
    for bad in ("no spaces", "", "n" * 65):
        with pytest.raises(ValueError, match="1-64 letters, digits"):
            new_key(bad)


@pytest.mark.parametrize(
    ("mode", "host", "configured", "required", "refused_at_start"),
    [("auto", "127.0.0.1", False, False, False), ("auto", "127.0.0.2", False, False, False),
     ("auto", "::1", False, False, False), ("auto", "[::1]", False, False, False),
     ("auto", "localhost", False, False, False),
     # A proxy on the same host connects from loopback: configured keys always count.
     ("auto", "127.0.0.1", True, True, False), ("auto", "localhost", True, True, False),
     ("auto", "0.0.0.0", True, True, False), ("auto", "10.1.2.3", True, True, False),
     ("auto", "0.0.0.0", False, True, True), ("auto", "api.internal", False, True, True),
     ("on", "127.0.0.1", False, True, False), ("on", "0.0.0.0", False, True, True),
     ("off", "0.0.0.0", False, False, False), ("off", "127.0.0.1", True, False, False)],
)
def test_keys_are_required_when_configured_and_off_loopback_unless_set(
        mode, host, configured, required, refused_at_start):
    assert keys_required(mode, host, configured) is required
    assert open_off_loopback(mode, host, configured) is refused_at_start


PROXIES = parse_networks("10.0.0.0/8, 192.168.1.1")


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # not a proxy: its header is ignored
        ("10.0.0.2", "1.2.3.4", "1.2.3.4"),
        ("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7", "1.2.3.4"),  # nearest untrusted hop
        ("192.168.1.1", "10.0.0.5, 10.0.0.6", "10.0.0.5"),  # all proxies: the first
        ("10.0.0.2", None, "10.0.0.2"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "1.2.3.4, not-an-ip", "10.0.0.2"),  # malformed: the proxy itself
        ("10.0.0.2", "2001:db8::1", "2001:db8::1"),
        ("", "1.2.3.4", ""),  # no usable peer address is never a trusted proxy
        ("unix:/run/api.sock", "1.2.3.4", "unix:/run/api.sock"),
    ],
)
def test_the_client_address_is_taken_from_forwarded_for_only_behind_trusted_proxies(
        peer, forwarded, client):
    assert client_address(peer, forwarded, PROXIES) == client


def test_trusted_proxies_are_addresses_or_networks():
    assert parse_networks("10.0.0.0/8,::1") == (ipaddress.ip_network("10.0.0.0/8"),
                                                ipaddress.ip_network("::1/128"))
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/8, proxy.local")
    assert parse_networks("10.1.2.3/8") == (ipaddress.ip_network("10.0.0.0/8"),)  # host bits


SECOND, MINUTE = Limit(50, 1), Limit(1000, 60)


@pytest.mark.parametrize(
    ("windows", "retry", "ratelimit"),
    [
        ([Window(SECOND, 0, 0.2), Window(MINUTE, 500, 31.0)], "1", '"50-per-1s";r=0;t=1'),
        ([Window(SECOND, 3, 0.5), Window(MINUTE, 0, 30.1)], "31", '"1000-per-60s";r=0;t=31'),
        ([Window(SECOND, 0, 0.9), Window(MINUTE, 0, 59.0)], "59", '"1000-per-60s";r=0;t=59'),
        ([Window(SECOND, 0, 0.0)], "1", '"50-per-1s";r=0;t=1'),  # never "retry in 0 s"
        ([Window(SECOND, 0, 0.2), Window(MINUTE, 1, 31.0)], "1", '"50-per-1s";r=0;t=1'),
        ([Window(SECOND, 2, 1.5)], "2", '"50-per-1s";r=2;t=2'),  # none exhausted: the longest
    ],
)
def test_a_429_says_when_to_retry_by_the_longest_exhausted_window(windows, retry, ratelimit):
    headers = limited_headers(windows)
    assert headers["Retry-After"] == retry and headers["RateLimit"] == ratelimit
    assert headers["RateLimit-Policy"] == policy_header([w.limit for w in windows])


def test_the_policy_header_lists_every_limit():
    assert policy_header([SECOND, MINUTE]) == '"50-per-1s";q=50;w=1, "1000-per-60s";q=1000;w=60'


# The middleware, in front of a stub app.

def stub(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"client": environ.get("cachedproxy.client")}).encode()]


stub.answer = stub  # type: ignore[attr-defined]  # it needs no I/O either


class StubLimiter:
    def __init__(self, windows=None, error=None):
        self.windows, self.error, self.seen = windows, error, []

    def hit(self, client, limits, now):
        self.seen.append(client)
        if self.error:
            raise self.error
        return self.windows

    def refused(self, client, limits, now):
        return None


def guarded(limiter=None, host="0.0.0.0", **settings):
    values = {"keys": LINES, **settings}
    return Access(stub, lambda: AccessSettings(**values), host, limiter, lambda: 100.0)


def test_without_a_key_views_are_401_and_open_paths_stay_open():
    app = guarded()
    status, headers, body = call(app, "/events-with-subscriptions/e1/")
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="cachedproxy"'
    assert json.loads(body)["error"]["code"] == "unauthorized"
    assert headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/healthz", "/readyz", "/openapi.json", "/admin/entries"):
        assert call(app, path)[0] == 200, path
    status, headers, body = call(app, "/x", headers={"Authorization": f"Bearer {KEY_B}"})
    assert status == 200 and json.loads(body) == {"client": "batch"}
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert call(guarded(require_keys="off"), "/x")[0] == 200
    # auto on loopback: keys count once any are configured (a proxy on the same host
    # connects from 127.0.0.1), and the API is open only while none are.
    assert call(guarded(host="127.0.0.1"), "/x")[0] == 401
    assert call(guarded(host="127.0.0.1", keys=""), "/x")[0] == 200


def test_keys_required_but_none_configured_say_so():
    status, _, body = call(guarded(keys=""), "/x")
    assert status == 401 and "none is configured" in json.loads(body)["error"]["message"]


def test_metrics_take_their_own_keys_when_set():
    metrics_key = "m" * 40
    app = guarded(metrics_keys=f"prom:{key_hash(metrics_key)}")
    assert call(app, "/metrics", headers={"Authorization": f"Bearer {KEY_A}"})[0] == 401
    assert call(app, "/metrics", headers={"Authorization": f"Bearer {metrics_key}"})[0] == 200
    assert call(guarded(), "/metrics", headers={"Authorization": f"Bearer {KEY_A}"})[0] == 200


def test_over_the_limit_is_429_with_retry_after_and_ratelimit_headers():
    limiter = StubLimiter([Window(Limit(2, 10), 0, 4.2)])
    app = guarded(limiter, rate_limit="2/10 seconds")
    status, headers, body = call(app, "/x", headers={"Authorization": f"Bearer {KEY_A}"})
    assert status == 429 and json.loads(body)["error"]["code"] == "rate_limited"
    assert (headers["Retry-After"], headers["RateLimit"], headers["RateLimit-Policy"]) == (
        "5", '"2-per-10s";r=0;t=5', '"2-per-10s";q=2;w=10')
    assert headers["Cache-Control"] == "no-store"
    assert limiter.seen == ["key:web"]
    call(guarded(limiter, rate_limit="2/10 seconds", require_keys="off"), "/x")
    assert limiter.seen[-1] == "addr:127.0.0.1"
    assert call(guarded(limiter), "/x", headers={"Authorization": f"Bearer {KEY_A}"})[0] == 200
    assert len(limiter.seen) == 2  # no limit configured: not counted


class MovingWindow:
    """limits' moving-window strategy as the Limiter uses it: a full window whose oldest
    request leaves at ``reset_time``."""

    def __init__(self, allow: bool, reset_time: float = 130.0) -> None:
        self.allow, self.reset_time, self.asked = allow, reset_time, 0

    def hit(self, item, key):
        self.asked += 1
        return self.allow

    test = hit

    def get_window_stats(self, item, key):
        return WindowStats(self.reset_time, 0 if not self.allow else 1)


def limiter_over(strategy: MovingWindow) -> Limiter:
    limiter = Limiter(redis.Redis(port=1), Keys("t"))  # never reached: the strategy is
    limiter.strategy = strategy  # type: ignore[assignment]
    return limiter


def test_a_refusal_known_to_stand_is_answered_without_redis_until_the_window_frees():
    strategy = MovingWindow(allow=False)
    limiter, now = limiter_over(strategy), [100.0]
    app = Access(stub, lambda: AccessSettings(keys=LINES, rate_limit="2/10 seconds"),
                 "0.0.0.0", limiter, lambda: now[0])
    key = {"Authorization": f"Bearer {KEY_A}"}
    assert on_loop(app, "/x", headers=key) is None  # only Redis can tell
    status, headers, _ = call(app, "/x", headers=key)
    assert status == 429 and headers["Retry-After"] == "30" and strategy.asked == 1
    now[0] = 110.0
    status, headers, body = on_loop(app, "/x", headers=key)
    assert status == 429 and strategy.asked == 1  # on the loop, Redis not asked
    assert (headers["Retry-After"], headers["RateLimit"]) == ("20", '"2-per-10s";r=0;t=20')
    assert json.loads(body)["error"]["code"] == "rate_limited"
    # another client: only Redis can tell
    assert on_loop(app, "/x", headers={"Authorization": f"Bearer {KEY_B}"}) is None
    now[0] = 130.0  # the oldest request left the window
    assert on_loop(app, "/x", headers=key) is None


@pytest.mark.parametrize(("allow", "refused"), [(True, False), (False, True)])
def test_the_miss_limit_counts_each_admitted_miss_and_refuses_over_it(allow, refused):
    strategy, asked = MovingWindow(allow), []

    def leads(answer: bool):
        return lambda: asked.append(answer) or answer

    misses = MissLimit(limiter_over(strategy),
                       lambda: AccessSettings(miss_rate_limit="5/second"), lambda: 100.0)
    misses.admit("key:web", leads(False))  # joins a fetch under way: not counted
    assert strategy.asked == 0 and asked == [False]
    if refused:
        for _ in range(2):  # the second time the standing refusal answers, alone
            with pytest.raises(TooManyRequests) as caught:
                misses.admit("key:web", leads(True))
            assert caught.value.headers["Retry-After"] == "30"
            assert "miss rate limit" in caught.value.message
        assert asked == [False, True]
    else:
        misses.admit("key:web", leads(True))
    assert strategy.asked == 1
    unlimited = MissLimit(limiter_over(strategy), AccessSettings, lambda: 100.0)
    unlimited.admit("key:web", leads(True))
    misses.admit(None, leads(True))  # no client named: not limited
    assert strategy.asked == 1 and len(asked) == 2


def test_a_limiter_without_redis_lets_requests_through_and_counts_them():
    before = UNAVAILABLE._value.get()
    app = guarded(StubLimiter(error=redis.ConnectionError("down")), rate_limit="1/second")
    assert call(app, "/x", headers={"Authorization": f"Bearer {KEY_A}"})[0] == 200
    assert UNAVAILABLE._value.get() == before + 1


def test_cors_is_off_by_default_and_an_allowlist_when_set():
    origin = {"Origin": "https://app.example", "Authorization": f"Bearer {KEY_A}"}
    _, headers, _ = call(guarded(), "/x", headers=origin)
    assert "Access-Control-Allow-Origin" not in headers
    app = guarded(cors_origins="https://app.example, http://localhost:3000")
    _, headers, _ = call(app, "/x", headers=origin)
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert headers["Vary"] == "Origin" and "Cache-Status" in headers[
        "Access-Control-Expose-Headers"]
    status, headers, _ = call(app, "/x", "OPTIONS", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
    assert status == 204 and headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    _, headers, _ = call(app, "/x", headers={**origin, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers


SESSION_TOKEN = "admin-token-0123456789"
LOGIN_AT = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "token", "now", "valid"),
    [
        (session_value(SESSION_TOKEN, LOGIN_AT), SESSION_TOKEN, LOGIN_AT + 60, True),
        # still valid a second before its expiry, not at it
        (session_value(SESSION_TOKEN, LOGIN_AT), SESSION_TOKEN, LOGIN_AT + SESSION_SECONDS - 1,
         True),
        (session_value(SESSION_TOKEN, LOGIN_AT), SESSION_TOKEN, LOGIN_AT + SESSION_SECONDS,
         False),
        # the token changed since: every session ends
        (session_value(SESSION_TOKEN, LOGIN_AT), "another-token", LOGIN_AT + 60, False),
        # no token configured, no cookie, a cookie of another shape
        (session_value(SESSION_TOKEN, LOGIN_AT), "", LOGIN_AT + 60, False),
        (None, SESSION_TOKEN, LOGIN_AT, False),
        ("", SESSION_TOKEN, LOGIN_AT, False),
        ("garbage", SESSION_TOKEN, LOGIN_AT, False),
        (f"{int(LOGIN_AT) + 60}.", SESSION_TOKEN, LOGIN_AT, False),
        (f"-5.{'0' * 64}", SESSION_TOKEN, LOGIN_AT, False),
        (f"{'9' * 13}.{'0' * 64}", SESSION_TOKEN, LOGIN_AT, False),
        # an expiry moved later keeps the old signature: refused
        (f"{int(LOGIN_AT) + SESSION_SECONDS + 3600}."
         + session_value(SESSION_TOKEN, LOGIN_AT).partition(".")[2], SESSION_TOKEN,
         LOGIN_AT + SESSION_SECONDS + 60, False),
    ],
)
def test_a_status_page_session(value, token, now, valid):
    """A browser's login cookie holds its expiry and a signature keyed by the admin
    token, never the token."""
    assert valid_session(value, token, now) is valid


def test_a_session_names_no_secret_and_expires_after_12_hours():
    value = session_value(SESSION_TOKEN, LOGIN_AT)
    expires, _, signature = value.partition(".")
    assert int(expires) == LOGIN_AT + 12 * 3600 and SESSION_TOKEN not in value
    assert re.fullmatch(r"[0-9a-f]{64}", signature)
    assert valid_session(value, SESSION_TOKEN, LOGIN_AT + 1)  # signed as it is checked


def test_an_expiry_of_more_than_12_digits_is_refused_even_if_signed():
    """12 digits of epoch seconds reach the year 33658; more is a forged cookie."""
    twelve = session_value(SESSION_TOKEN, 10**11, 0)
    thirteen = session_value(SESSION_TOKEN, 10**12, 0)
    assert valid_session(twelve, SESSION_TOKEN, 10**11 - 1)
    assert not valid_session(thirteen, SESSION_TOKEN, 10**12 - 1)


@pytest.mark.parametrize(("given", "expected", "same"), [
    ("token", "token", True), ("token", "token ", False), ("", "token", False),
    ("tokem", "token", False), ("a" * 100, "a", False)])
def test_secrets_compare_whole(given, expected, same):
    assert same_secret(given, expected) is same
