"""GitHub's documents as the demo serves them: organisations, repositories and users
with GitHub's fields (ids, node ids, URLs, descriptions, counts), made from the demo's
data, so a read-through of the demo shows what one of GitHub shows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass
class Repo:
    """A repository as the GitHub double keeps it."""

    full_name: str
    forks_count: int
    stargazers_count: int
    open_issues_count: int
    updated_at: str


API = "https://api.github.com"
WEB = "https://github.com"


def number_of(text: str) -> int:
    """A stable numeric id, as GitHub gives every object one."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:7], 16)


def user(login: str, number: int) -> dict[str, Any]:
    """A user as GitHub lists one (a member)."""
    return {"login": login, "id": number, "node_id": f"MDQ6VXNlcj{number}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{number}?v=4",
            "url": f"{API}/users/{login}", "html_url": f"{WEB}/{login}",
            "repos_url": f"{API}/users/{login}/repos", "type": "User", "site_admin": False}


def summary(org: dict[str, Any]) -> dict[str, Any]:
    """An organisation as GitHub lists one (a user's organisations)."""
    fields = ("login", "id", "node_id", "url", "repos_url", "events_url", "hooks_url",
              "issues_url", "members_url", "public_members_url", "avatar_url", "description")
    return {name: org[name] for name in fields}


def org_document(login: str, org: dict[str, Any]) -> dict[str, Any]:
    """An organisation as GitHub serves it at /orgs/<org>."""
    number = number_of(login)
    return {
        "login": login, "id": number, "node_id": f"MDEyOk9yZ2FuaXphdGlvbj{number}",
        "url": f"{API}/orgs/{login}", "repos_url": f"{API}/orgs/{login}/repos",
        "events_url": f"{API}/orgs/{login}/events", "hooks_url": f"{API}/orgs/{login}/hooks",
        "issues_url": f"{API}/orgs/{login}/issues",
        "members_url": f"{API}/orgs/{login}/members{{/member}}",
        "public_members_url": f"{API}/orgs/{login}/public_members{{/member}}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{number}?v=4",
        "description": f"{org['name']} (demo data)", "name": org["name"], "company": None,
        "blog": f"https://{login.lower()}.example", "location": "Los Gatos, California",
        "email": None, "twitter_username": None, "is_verified": True,
        "has_organization_projects": True, "has_repository_projects": True,
        "public_repos": len(org["repos"]), "public_gists": 0, "followers": 1000,
        "following": 0, "html_url": f"{WEB}/{login}", "created_at": "2012-01-01T00:00:00Z",
        "updated_at": "2026-11-01T00:00:00Z", "archived_at": None, "type": "Organization",
    }


def repo(repo: Repo) -> dict[str, Any]:
    """A repository as GitHub serves one (listed, or at /repos/<owner>/<repo>)."""
    owner, _, name = repo.full_name.partition("/")
    url, number = f"{API}/repos/{repo.full_name}", number_of(repo.full_name)
    return {
        "id": number, "node_id": f"MDEwOlJlcG9zaXRvcnk{number}",
        "name": name, "full_name": repo.full_name, "private": False,
        "owner": {**user(owner, number_of(owner)), "type": "Organization"},
        "html_url": f"{WEB}/{repo.full_name}", "description": f"{repo.full_name} (demo data)",
        "fork": False, "url": url, "forks_url": f"{url}/forks",
        "issues_url": f"{url}/issues{{/number}}",
        "pulls_url": f"{url}/pulls{{/number}}", "clone_url": f"{WEB}/{repo.full_name}.git",
        "homepage": None, "created_at": "2012-11-01T00:00:00Z", "updated_at": repo.updated_at,
        "pushed_at": repo.updated_at, "size": 1024, "language": "Java",
        "stargazers_count": repo.stargazers_count, "watchers_count": repo.stargazers_count,
        "forks_count": repo.forks_count, "open_issues_count": repo.open_issues_count,
        "has_issues": True, "archived": False, "disabled": False,
        "license": {"key": "apache-2.0", "name": "Apache License 2.0", "spdx_id": "Apache-2.0"},
        "topics": [], "visibility": "public", "forks": repo.forks_count,
        "open_issues": repo.open_issues_count, "watchers": repo.stargazers_count,
        "default_branch": "main",
    }


SORTS = {"created": None, "updated": "updated_at", "pushed": "updated_at",
         "full_name": "full_name"}


def sorted_repos(repos: list[Repo], sort: str | None, direction: str | None
                 ) -> list[dict[str, Any]]:
    """An organisation's repositories as GitHub lists them with ``sort`` (created,
    updated, pushed, full_name) and ``direction`` (asc, desc; by default asc for
    full_name, else desc); given neither, in the order they were created."""
    ordered = list(repos)
    if sort is not None or direction is not None:
        field = SORTS.get(sort or "created")
        if field is not None:
            ordered.sort(key=lambda r: getattr(r, field))
        if (direction or ("asc" if sort == "full_name" else "desc")) == "desc":
            ordered.reverse()
    return [repo(r) for r in ordered]
