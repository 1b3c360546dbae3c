"""How the upstream client reads an answer: rate limits as GitHub and others send them,
the next page's link, and the limit an upstream reports."""

from __future__ import annotations

import time

import pytest
import requests

from shared.errors import NotFound, UpstreamError
from shared.upstreams.kinds import Endpoint
from worker.upstream import RateLimited, UpstreamClient

BASE = "https://up.example/api"


class Answer:
    """A requests.Session that answers every GET with one prepared response."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes = b"{}") -> None:
        self.status, self.headers, self.body = status, headers, body
        self.sent: list[dict[str, str]] = []

    def get(self, url: str, headers: dict[str, str], **_: object) -> requests.Response:
        self.sent.append(headers)
        r = requests.Response()
        r.status_code, r.url, r._content = self.status, url, self.body
        r.headers.update(self.headers)
        return r


def client(answer: Answer) -> UpstreamClient:
    return UpstreamClient(Endpoint(BASE, {"Authorization": "Bearer t"}, 30), 1, 2,
                          session=answer)  # type: ignore[arg-type]


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
    assert up.rate_limit == (4321, float(reset))
    assert answer.sent[0]["Authorization"] == "Bearer t"
    assert up.timeout == (1, 2)
