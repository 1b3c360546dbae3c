"""Fetching a resource: conditional requests, page following and 304 reuse (no network)."""

from dataclasses import dataclass, field, replace

import pytest

from shared.errors import UpstreamError
from shared.policy.http import UpstreamFreshness
from shared.store.entry import Validator
from shared.upstreams.registry import kind_of
from worker.fetch import fetch
from worker.upstream import Response


@dataclass
class FakeUpstream:
    """Answers from a dict of path -> (body, etag); 304 when the sent ETag matches."""

    pages: dict[str, tuple[object, str]]
    page_size: int = 2
    seen: list[tuple[str, Validator | None]] = field(default_factory=list)

    def get(self, path: str, validator: Validator | None = None) -> Response:
        self.seen.append((path, validator))
        body, etag = self.pages[path]
        if validator is not None and validator.etag == etag:
            return Response(304, None, validator)
        return Response(200, body, Validator(etag, None))


def sub_page(names, count):
    return {"data": [{"subscriber": {"first_name": n}} for n in names],
            "meta_data": {"count": count}}


SUBS = "c42:subscriptions:e1"


def names(data):
    """Every page's names, joined in order."""
    return [name for page in data["pages"] for name in page]
BASE = "/event-subscriptions/?event_ids=[e1]"


def three_pages(third="E"):
    return {
        f"{BASE}&limit=2&offset=0": (sub_page(["A", "B"], 5), '"p0"'),
        f"{BASE}&limit=2&offset=2": (sub_page(["C", "D"], 5), '"p1"'),
        f"{BASE}&limit=2&offset=4": (sub_page([third], 5), f'"p2-{third}"'),
    }


def test_single_resource_fetch_then_304_revalidates():
    """An event is fetched once; the next fetch is conditional and a 304 keeps the data."""
    upstream = FakeUpstream({"/events/e1/": ({"data": [{"id": "e1", "title": "T"}]}, '"v1"')})
    first = fetch(upstream, kind_of("c42:event:e1"), "c42:event:e1", None, now=0.0, ttl=10)
    assert first.changed and first.entry.data == {"id": "e1", "title": "T"}
    second = fetch(upstream, kind_of("c42:event:e1"), "c42:event:e1", first.entry, now=20.0, ttl=10)
    assert not second.changed
    assert second.entry.data == first.entry.data and second.entry.fresh_until == 30.0
    assert upstream.seen[1] == ("/events/e1/", Validator('"v1"', None))


def test_all_pages_are_followed_in_order():
    """Subscriptions are read page by page until meta_data.count is covered."""
    upstream = FakeUpstream(three_pages())
    result = fetch(upstream, kind_of("c42:subscriptions:e1"), SUBS, None, now=0.0, ttl=10)
    assert names(result.entry.data) == ["A", "B", "C", "D", "E"]
    assert result.requests == 3
    assert [v for _, v in upstream.seen] == [None, None, None]


def test_unchanged_pages_cost_only_304s():
    """A second pass sends each page's validator; all 304 means only timestamps change."""
    upstream = FakeUpstream(three_pages())
    first = fetch(upstream, kind_of("c42:subscriptions:e1"), SUBS, None, now=0.0, ttl=10)
    second = fetch(upstream, kind_of("c42:subscriptions:e1"), SUBS, first.entry, now=5.0, ttl=10)
    assert not second.changed and second.entry.fetched_at == 0.0
    assert [v.etag for _, v in upstream.seen[3:]] == ['"p0"', '"p1"', '"p2-E"']


def test_one_changed_page_is_merged_with_the_unchanged_ones():
    """A page answered 200 replaces only itself; 304 pages keep their stored names."""
    upstream = FakeUpstream(three_pages())
    first = fetch(upstream, kind_of("c42:subscriptions:e1"), SUBS, None, now=0.0, ttl=10)
    upstream.pages = three_pages(third="Zoë")
    second = fetch(upstream, kind_of("c42:subscriptions:e1"), SUBS, first.entry, now=5.0, ttl=10)
    assert second.changed
    assert names(second.entry.data) == ["A", "B", "C", "D", "Zoë"]


def test_empty_subscriptions_need_one_request():
    """An event nobody subscribed to is one request and no names."""
    upstream = FakeUpstream({f"{BASE}&limit=2&offset=0": (sub_page([], 0), '"e"')})
    result = fetch(upstream, kind_of("c42:subscriptions:e1"), SUBS, None, now=0.0, ttl=10)
    assert names(result.entry.data) == [] and result.requests == 1


def test_malformed_page_fails_the_whole_fetch():
    """A bad page aborts the fetch, so a half-read resource is never stored."""
    pages = three_pages()
    pages[f"{BASE}&limit=2&offset=2"] = ({"data": "garbage"}, '"bad"')
    with pytest.raises(UpstreamError):
        fetch(FakeUpstream(pages), kind_of("c42:subscriptions:e1"), SUBS, None, now=0.0, ttl=10)


BASE_URL = "http://up.example/github"


@dataclass
class LinkedUpstream:
    """GitHub-style pages: path -> (body, etag, next page's URL); 304 keeps the Link."""

    pages: dict[str, tuple[object, str, str | None]]
    page_size: int = 2
    link_on_304: bool = True
    seen: list[tuple[str, Validator | None]] = field(default_factory=list)

    def get(self, path: str, validator: Validator | None = None) -> Response:
        self.seen.append((path, validator))
        body, etag, next_url = self.pages[path]
        if validator is not None and validator.etag == etag:
            return Response(304, None, validator, next_url if self.link_on_304 else None)
        return Response(200, body, Validator(etag, None), next_url)

    def path_of(self, url: str) -> str:
        if not url.startswith(BASE_URL + "/"):
            raise UpstreamError("upstream's next page is outside its base URL")
        return url[len(BASE_URL):]


def gh_repo(name: str, stars: int) -> dict:
    return {"full_name": name, "stargazers_count": stars, "forks_count": 0,
            "open_issues_count": 0, "updated_at": "2026-01-01T00:00:00Z"}


REPOS = "github:repos:o"
P1, P2 = "/orgs/o/repos?per_page=2", "/orgs/o/repos?per_page=2&page=2"


def linked(second=(("o/c", 1),), next_url=BASE_URL + P2):
    return {P1: ([gh_repo("o/a", 3), gh_repo("o/b", 8)], '"a"', next_url),
            P2: ([gh_repo(n, s) for n, s in second], f'"b-{second}"', None)}


def test_link_pages_are_followed_and_rankings_derived():
    upstream = LinkedUpstream(linked())
    result = fetch(upstream, kind_of(REPOS), REPOS, None, now=0.0, ttl=10)
    assert [path for path, _ in upstream.seen] == [P1, P2]
    assert result.entry.data["count"] == 3 and len(result.entry.data["pages"]) == 2
    assert result.entry.data["derived"]["stars"] == [["o/b", 8], ["o/a", 3], ["o/c", 1]]


def test_unchanged_link_pages_cost_only_304s_and_keep_the_rankings():
    upstream = LinkedUpstream(linked())
    first = fetch(upstream, kind_of(REPOS), REPOS, None, now=0.0, ttl=10)
    second = fetch(upstream, kind_of(REPOS), REPOS, first.entry, now=20.0, ttl=10)
    assert not second.changed and second.requests == 2
    assert second.entry.data == first.entry.data
    assert [v.etag for _, v in upstream.seen[2:]] == [upstream.pages[P1][1],
                                                      upstream.pages[P2][1]]


def test_a_changed_page_changes_the_rankings():
    upstream = LinkedUpstream(linked())
    first = fetch(upstream, kind_of(REPOS), REPOS, None, now=0.0, ttl=10)
    upstream.pages = linked(second=(("o/c", 50),))
    second = fetch(upstream, kind_of(REPOS), REPOS, first.entry, now=20.0, ttl=10)
    assert second.changed
    assert second.entry.data["derived"]["stars"][0] == ["o/c", 50]


def test_a_304_without_a_link_fetches_the_pages_again_whole():
    """When a 304 does not say where the next page is, the rest cannot be walked
    conditionally: the resource is fetched again without validators."""
    upstream = LinkedUpstream(linked())
    first = fetch(upstream, kind_of(REPOS), REPOS, None, now=0.0, ttl=10)
    upstream.link_on_304 = False
    again = fetch(upstream, kind_of(REPOS), REPOS, first.entry, now=20.0, ttl=10)
    assert again.entry.data == first.entry.data
    assert [(p, v is None) for p, v in upstream.seen[2:]] == [(P1, False), (P1, True),
                                                              (P2, True)]


@pytest.mark.parametrize("elsewhere", ["http://evil.example/orgs/o/repos?page=2",
                                       "http://up.example/githubx/orgs?page=2",
                                       "http://up.example/github"])
def test_a_next_page_outside_the_base_url_is_never_followed(elsewhere):
    upstream = LinkedUpstream(linked(next_url=elsewhere))
    with pytest.raises(UpstreamError, match="outside its base URL"):
        fetch(upstream, kind_of(REPOS), REPOS, None, now=0.0, ttl=10)
    assert [path for path, _ in upstream.seen] == [P1]


@dataclass
class SaysItsFreshness(FakeUpstream):
    """FakeUpstream whose answers carry what their caching headers say, by path."""

    said: dict[str, UpstreamFreshness] = field(default_factory=dict)

    def get(self, path: str, validator: Validator | None = None) -> Response:
        answer = super().get(path, validator)
        return replace(answer, freshness=self.said.get(path, UpstreamFreshness()))


@pytest.mark.parametrize(("said", "follow", "fresh_for"), [
    (UpstreamFreshness(max_age=60), (1.0, 3600.0), 60),
    (UpstreamFreshness(max_age=60), None, 10),  # not followed: the configured TTL
    (UpstreamFreshness(), (1.0, 3600.0), 10),  # says nothing: the configured TTL
    (UpstreamFreshness(max_age=0), (5.0, 3600.0), 5),  # no-cache: the lower bound
    (UpstreamFreshness(max_age=86400), (1.0, 600.0), 600),
])
def test_a_followed_upstream_s_answer_sets_its_ttl_within_bounds(said, follow, fresh_for):
    upstream = SaysItsFreshness({"/events/e1/": ({"data": [{"id": "e1", "title": "T"}]}, '"v"')},
                                said={"/events/e1/": said})
    kind = kind_of("c42:event:e1")
    first = fetch(upstream, kind, "c42:event:e1", None, now=0.0, ttl=10, follow=follow)
    assert first.entry.fresh_until == fresh_for
    again = fetch(upstream, kind, "c42:event:e1", first.entry, now=100.0, ttl=10, follow=follow)
    assert not again.changed and again.entry.fresh_until == 100.0 + fresh_for  # a 304 too


def test_a_followed_upstream_s_pages_are_fresh_for_the_shortest_they_say():
    pages = three_pages()
    said = dict(zip(pages, [UpstreamFreshness(max_age=300), UpstreamFreshness(max_age=30),
                            UpstreamFreshness(max_age=120)], strict=True))
    upstream = SaysItsFreshness(pages, said=said)
    got = fetch(upstream, kind_of(SUBS), SUBS, None, now=0.0, ttl=10, follow=(1.0, 3600.0))
    assert got.entry.fresh_until == 30


@pytest.mark.parametrize("follow", [(1.0, 3600.0)])
def test_an_answer_that_forbids_storing_is_not_stored_when_followed(follow):
    upstream = SaysItsFreshness({"/events/e1/": ({"data": [{"id": "e1", "title": "T"}]}, '"v"')},
                                said={"/events/e1/": UpstreamFreshness(store=False)})
    with pytest.raises(UpstreamError, match="no-store or private"):
        fetch(upstream, kind_of("c42:event:e1"), "c42:event:e1", None, now=0.0, ttl=10,
              follow=follow)
    stored = fetch(upstream, kind_of("c42:event:e1"), "c42:event:e1", None, now=0.0, ttl=10)
    assert stored.entry.fresh_until == 10  # not followed: configuration decides
