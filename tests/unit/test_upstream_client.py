"""How the upstream client reads an answer: rate limits as GitHub and others send them,
the next page's link, and the limit an upstream reports; and how it keeps a request
within its fetch's deadline and its upstream's max_in_flight."""

from __future__ import annotations

import io
import time

import pytest
import requests
import urllib3

from shared.errors import NotFound, UpstreamError, UpstreamTimeout
from shared.upstreams.kinds import Endpoint
from worker.upstream import RateLimited, UpstreamClient, pooled_session

BASE = "https://up.example/api"


class Answer:
    """A requests.Session that answers every GET with one prepared response."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes = b"{}") -> None:
        self.status, self.headers, self.body = status, headers, body
        self.sent: list[dict[str, str]] = []
        self.timeouts: list[tuple[float, float]] = []

    def get(self, url: str, headers: dict[str, str], timeout: tuple[float, float],
            **_: object) -> requests.Response:
        self.sent.append(headers)
        self.timeouts.append(timeout)
        r = requests.Response()
        r.status_code, r.url = self.status, url
        r.raw = urllib3.HTTPResponse(io.BytesIO(self.body), preload_content=False)
        r.headers.update(self.headers)
        return r


def client(answer: Answer, max_in_flight: int = 32) -> UpstreamClient:
    return UpstreamClient(Endpoint(BASE, {"Authorization": "Bearer t"}, 30), 1, 2,
                          session=answer, max_in_flight=max_in_flight)  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "headers", "retry_after"), [
    (429, {"Retry-After": "30"}, 30.0),
    (429, {}, None),
    (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "{reset}"}, 120.0),
    (403, {"Retry-After": "60"}, 60.0),  # GitHub's secondary limit
])
def test_rate_limits_are_rate_limits_with_when_to_ask_again(status, headers, retry_after):
    reset = str(int(time.time()) + 120)
    answer = Answer(status, {k: v.format(reset=reset) for k, v in headers.items()})
    with pytest.raises(RateLimited) as limited:
        client(answer).get("/orgs/x")
    assert limited.value.upstream_status == status
    assert limited.value.reported == (
        (0, float(reset)) if "X-RateLimit-Reset" in headers else None)
    if retry_after is None:
        assert limited.value.retry_after is None
    else:
        assert limited.value.retry_after == pytest.approx(retry_after, abs=2)


@pytest.mark.parametrize(("status", "error"), [(403, UpstreamError), (401, UpstreamError),
                                               (404, NotFound), (500, UpstreamError)])
def test_other_failures_are_not_rate_limits(status, error):
    with pytest.raises(error) as failed:
        client(Answer(status, {"X-RateLimit-Remaining": "4000"})).get("/orgs/x")
    assert not isinstance(failed.value, RateLimited)
    assert failed.value.upstream_status == status


def test_the_reported_limit_and_the_next_page_are_read():
    reset = int(time.time()) + 600
    answer = Answer(200, {
        "X-RateLimit-Remaining": "4321", "X-RateLimit-Reset": str(reset), "ETag": 'W/"p1"',
        "Link": f'<{BASE}/orgs/x/repos?per_page=30&page=2>; rel="next", '
                f'<{BASE}/orgs/x/repos?per_page=30&page=5>; rel="last"'}, b"[]")
    up = client(answer)
    response = up.get("/orgs/x/repos?per_page=30")
    assert response.next_url == f"{BASE}/orgs/x/repos?per_page=30&page=2"
    assert up.path_of(response.next_url) == "/orgs/x/repos?per_page=30&page=2"
    assert response.rate_limit == (4321, float(reset))
    assert answer.sent[0]["Authorization"] == "Bearer t"
    assert up.timeout == (1, 2)


def test_a_request_past_its_deadline_is_not_sent():
    answer = Answer(200, {}, b"{}")
    with pytest.raises(UpstreamTimeout):
        client(answer).get("/orgs/x", deadline=time.monotonic() - 0.1)
    assert answer.sent == []


def test_the_timeouts_shrink_to_the_time_left():
    answer = Answer(200, {}, b"{}")
    up = client(answer)
    up.get("/orgs/x", deadline=time.monotonic() + 0.5)
    connect, read = answer.timeouts[0]
    assert 0 < connect <= 0.5 and 0 < read <= 0.5
    up.get("/orgs/x")
    assert answer.timeouts[1] == (1, 2)


def test_past_max_in_flight_a_request_waits_for_a_slot_until_its_deadline():
    answer = Answer(200, {}, b"{}")
    up = client(answer, max_in_flight=1)
    up._slots.acquire()  # one request in flight
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as timed_out:
        up.get("/orgs/x", deadline=started + 0.2)
    assert time.monotonic() - started == pytest.approx(0.2, abs=0.15)
    assert "1 requests in flight" in timed_out.value.message and answer.sent == []
    up._slots.release()
    assert up.get("/orgs/x", deadline=time.monotonic() + 1).status == 200


@pytest.mark.parametrize(("environ", "proxies"), [
    ({"HTTPS_PROXY": "http://proxy.internal:3128"}, {"https": "http://proxy.internal:3128"}),
    ({"HTTPS_PROXY": "http://proxy.internal:3128", "NO_PROXY": "up.example"}, {}),
    ({}, {}),
])
def test_the_environments_proxy_is_read_once_for_the_upstream(monkeypatch, environ, proxies):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                 "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    session = pooled_session(BASE, 8)
    assert session.proxies == proxies and not session.trust_env
    assert session.get_adapter(BASE)._pool_maxsize == 8
