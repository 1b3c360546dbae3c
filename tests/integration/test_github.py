"""GitHub organisations end to end, against the GitHub-compatible demo: top-N views over
all pages, correct against the upstream's own data, refreshed conditionally; rate limits
answered as GitHub gives them."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from demo.github_documents import org_document
from tests.harness import Stack
from tests.helpers import eventually

FIELDS = {"stars": "stargazers_count", "forks": "forks_count",
          "open_issues": "open_issues_count", "last_updated": "updated_at"}


def ranking(demo, org: str, field: str) -> list[list[object]]:
    """The top list computed here from the upstream's own data: largest first, ties in
    ascending name order."""
    repos = demo.upstream.github.orgs[org]["repos"]
    key = FIELDS[field]
    ordered = sorted(repos, key=lambda r: r.full_name)
    ordered = sorted(ordered, key=lambda r: getattr(r, key), reverse=True)
    return [[r.full_name, getattr(r, key)] for r in ordered]


def repo_requests(demo, org: str) -> dict[str, int]:
    return demo.upstream.github.counters().get("github:repos", {}).get(org, {})


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_top_n_of_each_field_matches_the_upstreams_data(api, demo, field):
    """/view/top/<N>/<field> over Netflix's 150 repositories (two pages of 100)."""
    r = requests.get(f"{api}/view/top/5/{field}", timeout=20)
    assert r.status_code == 200, r.text
    assert r.json() == ranking(demo, "Netflix", field)[:5]
    everything = requests.get(f"{api}/view/top/1000/{field}/", timeout=20)
    assert everything.json() == ranking(demo, "Netflix", field)
    assert len(everything.json()) == 150


@pytest.mark.parametrize("path", ["/view/top/0/stars", "/view/top/-1/stars",
                                  "/view/top/five/stars", "/view/top/5/name",
                                  "/view/top/5/stars%5D", "/view/top/5"])
def test_bad_top_parameters_are_refused_before_upstream(api, demo, path):
    r = requests.get(f"{api}{path}", timeout=20)
    assert r.status_code in (400, 404)
    assert r.json()["error"]["code"] in ("invalid_request", "not_found")
    assert repo_requests(demo, "Netflix") == {}


@pytest.fixture
def system(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start a worker and an API of their own with some settings changed (environment
    names); they stop after the test."""
    with Stack(env, tmp_path) as stack:

        def start(beat: bool = False, **changes: str) -> str:
            # A prefix of its own: what one test leaves (a reported rate limit, a budget
            # in debt, a schedule) is not the next one's.
            own = {"KEY_PREFIX": f"cpgithub-{os.urandom(4).hex()}", **changes}
            stack.worker("github", **own)
            if beat:
                stack.beat(**own)
            return stack.api(**own)

        yield start


def test_link_pages_conditional_refresh_and_a_change_on_page_four(system, demo):
    """Five pages of 30 followed by their Link headers; a refresh asks each page with
    its ETag and GitHub answers 304 for the unchanged ones; a repository changed on page
    4 moves to the top once refreshed, and no client waits on upstream meanwhile."""
    api = system(GITHUB_PAGE_SIZE="30", GITHUB_TTL="2")
    first = requests.get(f"{api}/view/top/3/stars", timeout=20)
    assert first.json() == ranking(demo, "Netflix", "stars")[:3]
    assert repo_requests(demo, "Netflix") == {"200": 5}

    fourth_page = demo.upstream.github.orgs["Netflix"]["repos"][100]
    demo.upstream.github.put_repo(fourth_page.full_name, {"stargazers_count": 99_999})

    def moved_up() -> bool:
        r = requests.get(f"{api}/view/top/1/stars", timeout=20)
        assert r.status_code == 200 and r.elapsed.total_seconds() < 2.0
        return r.json() == [[fourth_page.full_name, 99_999]]

    eventually(moved_up, 20, "the changed repository at the top")
    seen = repo_requests(demo, "Netflix")
    assert seen["304"] >= 4 and seen["200"] >= 6  # 4 unchanged pages and the changed one
    assert requests.get(f"{api}/view/top/150/stars", timeout=20).json() == ranking(
        demo, "Netflix", "stars")


def test_an_exhausted_rate_limit_serves_stale_and_a_cold_org_502(system, demo, serve_api):
    """GitHub's 403 with X-RateLimit-Remaining: 0 is a rate limit: a view with data
    answers stale-if-error, one without a 502 naming the upstream's status."""
    api = system(GITHUB_ORG="demo-small", GITHUB_TTL="1", CACHE_STALE_WHILE_REVALIDATE="0")
    assert requests.get(f"{api}/view/top/3/stars", timeout=20).json() == ranking(
        demo, "demo-small", "stars")
    demo.upstream.github.set_rate_limit(remaining=0)

    def stale() -> bool:
        r = requests.get(f"{api}/view/top/3/stars", timeout=20)
        assert r.status_code == 200 and r.json() == ranking(demo, "demo-small", "stars")
        return "detail=stale-if-error" in r.headers["Cache-Status"]

    eventually(stale, 10, "stale-if-error while GitHub's limit is exhausted")
    assert repo_requests(demo, "demo-small").get("403", 0) >= 1
    cold = requests.get(f"{serve_api(github={'org': 'nobody-cached'})}/view/top/3/stars",
                        timeout=20)
    assert cold.status_code == 502 and cold.json()["error"]["code"] == "upstream_error"
    assert "fwd-status=403" in cold.headers["Cache-Status"]


def github_requests(demo, org: str) -> int:
    return sum(n for kind, orgs in demo.upstream.github.counters().items()
               for o, statuses in orgs.items() if o == org for n in statuses.values())


@pytest.mark.parametrize(("changes", "limit", "first_wave"), [
    # 360 an hour: one request every 10 s, a bucket of one.
    ({"GITHUB_BUDGET_PER_HOUR": "360"}, None, (1, 1)),
    # No budget of our own, but GitHub says 20 remain for the next hour: known once the
    # first answer reports it. The three prefetches start together (a worker runs up to
    # max_in_flight requests at once): those that go before the first answer is back go,
    # with their pages (all three, or fewer when that answer is quick), and the rest
    # wait for the budget it reports.
    ({"GITHUB_BUDGET_PER_HOUR": "0"}, 20, (1, 5)),
])
def test_refreshes_stay_within_the_upstreams_budget(system, demo, changes, limit,
                                                    first_wave):
    """The configured organisation's three resources with a 1 s TTL would be refreshed
    about four times a second (30 requests in 8 s); paced by the budget, or by what
    GitHub says remains, they ask at most one request per 10 s after the first."""
    if limit is not None:
        demo.upstream.github.set_rate_limit(remaining=limit)
    system(beat=True, GITHUB_ORG="demo-small", GITHUB_TTL="1",
           REFRESH_TICK_INTERVAL="0.25", **changes)
    least, most = first_wave
    eventually(lambda: github_requests(demo, "demo-small") >= least, 20, "the first prefetch")
    first = time.monotonic()
    time.sleep(8)  # time must pass for refreshes to fall due; none may go past the budget
    seconds = time.monotonic() - first
    assert github_requests(demo, "demo-small") <= most + int(seconds / 10) + 1


def test_allowlisted_paths_are_read_through_the_cache(api, demo):
    """/github/orgs/<org> and /github/users/<user>/orgs: GitHub's documents whole,
    fetched once through the worker, then hits; upstream's 404 is ours."""
    first = requests.get(f"{api}/github/orgs/Netflix", timeout=20)
    assert first.status_code == 200
    assert first.json() == org_document("Netflix", demo.upstream.github.orgs["Netflix"])
    assert {"id", "description", "html_url", "avatar_url", "repos_url"} <= set(first.json())
    assert first.headers["Cache-Status"].startswith("cachedproxy; fwd=miss")
    again = requests.get(f"{api}/github/orgs/Netflix", timeout=20)
    assert again.headers["Cache-Status"].startswith("cachedproxy; hit")
    assert demo.upstream.github.counters()["github:org"] == {"Netflix": {"200": 1}}
    orgs = requests.get(f"{api}/github/users/ada/orgs", timeout=20)
    assert [(o["login"], o["description"]) for o in orgs.json()] == [
        ("demo-small", "A small demo organisation (demo data)")]
    missing = requests.get(f"{api}/github/orgs/nobody-here", timeout=20)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_a_repository_is_read_through_by_owner_and_name(api, demo):
    """/github/repos/<owner>/<repo>: a key of two parameters, through the same queue,
    flight and cache; a name with dots is a name."""
    demo.upstream.github.put_repo("demo-small/socket.io", {"stargazers_count": 12})
    url = f"{api}/github/repos/demo-small/socket.io"
    first = requests.get(url, timeout=20)
    assert first.status_code == 200, first.text
    assert first.json()["full_name"] == "demo-small/socket.io"
    assert first.json()["stargazers_count"] == 12
    assert first.json()["html_url"] == "https://github.com/demo-small/socket.io"
    assert requests.get(url, timeout=20).headers["Cache-Status"].startswith("cachedproxy; hit")
    assert demo.upstream.github.counters()["github:repo"] == {
        "demo-small/socket.io": {"200": 1}}
    gone = requests.get(f"{api}/github/repos/demo-small/nothing", timeout=20)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_a_paged_resource_is_read_through_as_one_list(api, demo):
    """/github/orgs/<org>/repos: every page's repositories, as GitHub sends them."""
    r = requests.get(f"{api}/github/orgs/Netflix/repos", timeout=20)
    assert r.status_code == 200, r.text
    names = [repo["full_name"] for repo in r.json()]
    assert names == [repo.full_name for repo in demo.upstream.github.orgs["Netflix"]["repos"]]
    assert {"id", "owner", "html_url", "license"} <= set(r.json()[0])
    members = requests.get(f"{api}/github/orgs/demo-small/members", timeout=20)
    assert [m["login"] for m in members.json()] == ["ada", "grace"]


def test_a_declared_query_is_passed_on_and_cached_on_its_own(api, demo):
    """?sort= and ?direction= reach GitHub (on every page) and make an entry of their
    own: the same query in another order is a hit; another query is not on the list."""
    url = f"{api}/github/orgs/Netflix/repos"
    first = requests.get(f"{url}?sort=full_name&direction=desc", timeout=20)
    assert first.status_code == 200, first.text
    everything = [r.full_name for r in demo.upstream.github.orgs["Netflix"]["repos"]]
    assert [r["full_name"] for r in first.json()] == sorted(everything, reverse=True)
    assert repo_requests(demo, "Netflix") == {"200": 2}  # two pages of 100
    again = requests.get(f"{url}?direction=desc&sort=full_name", timeout=20)
    assert again.headers["Cache-Status"].startswith("cachedproxy; hit")
    assert again.json() == first.json() and repo_requests(demo, "Netflix") == {"200": 2}
    plain = requests.get(url, timeout=20)
    assert [r["full_name"] for r in plain.json()] == everything
    for query in ("sort=stars", "type=private", "per_page=1", "sort=full_name&sort=updated"):
        refused = requests.get(f"{url}?{query}", timeout=20)
        assert refused.status_code == 404, query
    assert repo_requests(demo, "Netflix") == {"200": 4}


@pytest.mark.parametrize("path", [
    "/github/orgs/Netflix/teams",  # upstream has it; the allowlist does not
    "/github/repos/Netflix",  # a key of two values, given one
    "/github/repos/Netflix/hystrix-00/forks",
    "/github/repos/Netflix/..",
    "/github/repos/Netflix/%2e%2e",
    "/github/repos/Netflix%2Fhystrix-00",
    "/github/repos/Netflix/hystrix-00?x=1",
    "/github/emojis",
    "/github/orgs/Netflix?per_page=1",  # a query is never passed on
    "/github/orgs/Netflix%2Frepos",  # an encoded slash
    "/github/orgs/%2e%2e",
    "/github/orgs/..",
    "/github/orgs/..%2F..%2Forgs%2FNetflix%2Frepos",
    "/github/users/ada/orgs/../../../orgs/Netflix/repos",
    "/github//evil.example/orgs/x",
    "//github/orgs/Netflix",
    "/github/orgs/Net%20flix",
    "/github/orgs/Netflix%00",
    "/GITHUB/orgs/Netflix",
])
def test_anything_not_allowlisted_is_404_without_an_upstream_request(api, demo, path):
    """Never an open proxy: sent as is (no client-side normalising), every path outside
    the allowlist is a JSON 404 and upstream sees nothing."""
    url = urlsplit(api)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        status, body = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert status == 404, (path, body)
    assert body["error"]["code"] == "not_found"
    if path.startswith("/github/"):  # under a read-through prefix, the 404 says why
        assert body["error"]["message"].startswith("not on the read-through allowlist")
    assert demo.upstream.github.counters() == {}
