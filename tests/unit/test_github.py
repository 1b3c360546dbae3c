"""The shipped catalogue's GitHub entry: repositories kept, rankings derived once per
change (largest first, ties by name), the top-N view, and GitHub's settings."""

from __future__ import annotations

import pytest

from shared.config.settings import Settings
from shared.errors import InvalidRequest, UpstreamError
from shared.upstreams.registry import kind_of, upstreams, views

REPOS = kind_of("github:repos:Netflix")
MEMBERS = kind_of("github:members:Netflix")
ORG_REPOS = kind_of("github:org_repos:Netflix")
TOP = next(v for v in views() if v.name == "top")
GITHUB = upstreams()["github"]


def repo(name: str, stars: int, forks: int = 0, issues: int = 0,
         updated: str = "2026-01-01T00:00:00Z") -> dict:
    return {"full_name": name, "stargazers_count": stars, "forks_count": forks,
            "open_issues_count": issues, "updated_at": updated, "private": False}


PAGE = [repo("o/b", 5, forks=2, updated="2025-03-01T00:00:00Z"),
        repo("o/a", 5, forks=7, issues=4),
        repo("o/c", 9, issues=4, updated="2024-01-01T00:00:00Z")]


def test_the_view_s_repositories_keep_the_ranked_fields_only():
    assert REPOS.trim([PAGE[0]]) == [{"name": "o/b", "forks": 2, "stars": 5, "open_issues": 0,
                                      "last_updated": "2025-03-01T00:00:00Z"}]


def test_read_through_repositories_and_members_are_whole_as_github_sends_them():
    assert ORG_REPOS.trim([PAGE[0]]) == [PAGE[0]]
    members = [{"login": "ada", "id": 1, "type": "User"}, {"login": "grace"}]
    assert MEMBERS.trim(members) == members


@pytest.mark.parametrize("body", [
    {"message": "Not Found"},
    [repo("o/a", 1) | {"stargazers_count": "many"}],
    [{"full_name": "o/a"}],
    [repo("o/a", 1) | {"updated_at": None}],
])
def test_malformed_repositories_are_refused(body):
    with pytest.raises(UpstreamError):
        REPOS.trim(body)


@pytest.mark.parametrize(("field", "expected"), [
    ("stars", [["o/c", 9], ["o/a", 5], ["o/b", 5]]),
    ("forks", [["o/a", 7], ["o/b", 2], ["o/c", 0]]),
    ("open_issues", [["o/a", 4], ["o/c", 4], ["o/b", 0]]),
    ("last_updated", [["o/a", "2026-01-01T00:00:00Z"], ["o/b", "2025-03-01T00:00:00Z"],
                      ["o/c", "2024-01-01T00:00:00Z"]]),
])
def test_rankings_are_largest_first_with_ties_in_name_order(field, expected):
    """Each ranking over all pages' items: largest first; equal values in ascending
    order of the repository's full name, whatever order upstream listed them in."""
    derived = REPOS.derive(REPOS.trim(PAGE))
    assert derived[field] == expected
    assert REPOS.derive(REPOS.trim(list(reversed(PAGE))))[field] == expected


@pytest.mark.parametrize(("n", "expected"), [(1, [["o/c", 9]]), (2, [["o/c", 9], ["o/a", 5]]),
                                             (3, None), (100, None)])
def test_top_n_is_a_slice_of_the_ranking(n, expected):
    """N larger than the repository count gives them all."""
    data = {"count": 3, "pages": [REPOS.trim(PAGE)], "derived": REPOS.derive(REPOS.trim(PAGE))}
    body = TOP.build({"n": n, "field": "stars"}, [data])
    assert body == (expected or data["derived"]["stars"])


@pytest.mark.parametrize(("name", "raw", "message"), [
    ("n", "0", "invalid n: use a positive integer"),
    ("n", "-1", "invalid n: use a positive integer"),
    ("n", "1.5", "invalid n: use a positive integer"),
    ("n", "٣", "invalid n: use a positive integer"),
    ("field", "name", "invalid field: use one of forks, last_updated, open_issues, stars"),
    ("field", "stars]|[0", "invalid field: use one of forks, last_updated, open_issues, stars"),
])
def test_top_parameters_are_validated_before_anything_is_read(name, raw, message):
    param = next(p for p in TOP.params if p.name == name)
    with pytest.raises(InvalidRequest) as refused:
        param.parse(raw)
    assert refused.value.message == message


def test_top_reads_the_configured_organisations_repositories():
    settings = Settings().replace(github={"org": "demo-small"})
    assert TOP.resources({"n": 5, "field": "stars"}, settings) == ["github:repos:demo-small"]


def test_github_settings_endpoint_and_prefetch():
    """GITHUB_ORG (default Netflix) is kept warm: the organisation, its members and its
    repositories; the token goes as a Bearer token with GitHub's media type."""
    section = GITHUB.section(token="ghp_x")
    assert section.org == "Netflix" and section.base_url == "https://api.github.com"
    endpoint = GITHUB.endpoint(section)
    assert endpoint.headers["Authorization"] == "Bearer ghp_x"
    assert endpoint.headers["Accept"] == "application/vnd.github+json"
    assert endpoint.page_size == 100
    assert GITHUB.prefetch(section) == ["github:org:Netflix", "github:repos:Netflix",
                                        "github:members:Netflix"]
