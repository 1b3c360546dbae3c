"""A GitHub-compatible demo upstream: organisations, their members and repositories.

Serves ``/github/orgs/<org>``, ``/github/orgs/<org>/repos``, ``/github/orgs/<org>/members``,
``/github/repos/<owner>/<repo>`` and ``/github/users/<user>/orgs`` as GitHub's REST API
does, with GitHub's fields (ids, URLs, descriptions): pages of ``per_page`` (default
30, at most 100) linked by ``Link`` headers (rel="next", "last"), weak ETags and 304s,
``X-RateLimit-*`` headers on every answer, a 304 not charged against the limit, and
an exhausted limit (403 with ``X-RateLimit-Remaining: 0``) or a secondary limit (403 with
``Retry-After``) that a test can switch on. Anonymous requests are served, as GitHub
serves them; a token that is sent must be the demo's. ``Netflix`` has 150 repositories and 45
members; ``demo-small`` has 3 repositories.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import random
import threading
import time
from collections import Counter
from typing import Any

import bottle

from demo import github_documents as documents
from demo.github_documents import Repo
from shared.policy.http import not_modified

PREFIX = "/github"
RATE_LIMIT = 5000  # requests an hour, as GitHub gives an authenticated user


def sample_orgs() -> dict[str, dict[str, Any]]:
    """Deterministic organisations; some values tie on purpose."""
    rng = random.Random(42)
    words = ["hystrix", "eureka", "zuul", "ribbon", "archaius", "conductor", "metaflow",
             "dispatch", "titus", "atlas", "spinnaker", "vector", "chaos", "falcor", "polly"]
    repos = []
    for i in range(150):
        name = f"Netflix/{words[i % len(words)]}-{i // len(words):02d}"
        repos.append(Repo(
            name, rng.randrange(0, 400), rng.randrange(0, 4000) // 10 * 10,
            rng.randrange(0, 60),
            time.strftime("%Y-%m-%dT%H:%M:%SZ",
                          time.gmtime(1_700_000_000 + rng.randrange(0, 40_000_000))),
        ))
    small = [Repo("demo-small/a", 1, 5, 0, "2026-01-01T00:00:00Z"),
             Repo("demo-small/b", 2, 5, 3, "2026-02-01T00:00:00Z"),
             Repo("demo-small/c", 0, 7, 1, "2025-12-01T00:00:00Z")]
    return {
        "Netflix": {"name": "Netflix, Inc.", "repos": repos,
                    "members": [f"member-{i:02d}" for i in range(45)]},
        "demo-small": {"name": "A small demo organisation", "repos": small,
                       "members": ["ada", "grace"]},
    }


class DemoGitHub:
    """State of the GitHub-compatible demo; every method is safe from any thread."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._lock = threading.Lock()
        self.reset()
        self.app = self._build_app()

    def reset(self) -> None:
        """Back to the initial data, counters and rate limit."""
        with self._lock:
            self.orgs = sample_orgs()
            self.requests: Counter[tuple[str, str, int]] = Counter()
            self.remaining = RATE_LIMIT
            self.reset_at = int(time.time()) + 3600
            self.secondary_retry_after: int | None = None

    def counters(self) -> dict[str, dict[str, dict[str, int]]]:
        """Requests seen, as {"github:<kind>": {org: {status: count}}}."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        with self._lock:
            for (kind, org, status), n in self.requests.items():
                out.setdefault(f"github:{kind}", {}).setdefault(org, {})[str(status)] = n
        return out

    def put_repo(self, full_name: str, changes: dict[str, Any]) -> None:
        """Change (or add) a repository, e.g. ``{"stargazers_count": 9000}``."""
        org = full_name.partition("/")[0]
        with self._lock:
            repos = self.orgs.setdefault(org, {"name": org, "repos": [], "members": []})["repos"]
            repo = next((r for r in repos if r.full_name == full_name), None)
            if repo is None:
                repo = Repo(full_name, 0, 0, 0, "2026-01-01T00:00:00Z")
                repos.append(repo)
            for key, value in changes.items():
                if key in {"forks_count", "stargazers_count", "open_issues_count", "updated_at"}:
                    setattr(repo, key, value)

    def set_rate_limit(self, remaining: int | None = None,
                       secondary_retry_after: int | None = None) -> None:
        """Report (and enforce) a rate limit: requests left and when it resets."""
        with self._lock:
            if remaining is not None:
                self.remaining = remaining
            self.secondary_retry_after = secondary_retry_after

    # --- serving -------------------------------------------------------------------

    def _build_app(self) -> bottle.Bottle:
        app = bottle.Bottle()

        @app.get(f"{PREFIX}/orgs/<org>")
        def org(org: str) -> bottle.HTTPResponse:
            return self._serve("org", org, lambda o: documents.org_document(org, o))

        @app.get(f"{PREFIX}/repos/<owner>/<name>")
        def repo(owner: str, name: str) -> bottle.HTTPResponse:
            full_name = f"{owner}/{name}"

            def build(o: dict[str, Any]) -> Any:
                found = next((r for r in o["repos"] if r.full_name == full_name), None)
                return None if found is None else documents.repo(found)
            return self._serve("repo", owner, build, key=full_name)

        @app.get(f"{PREFIX}/orgs/<org>/repos")
        def repos(org: str) -> bottle.HTTPResponse:
            query = bottle.request.query
            return self._serve("repos", org, lambda o: documents.sorted_repos(
                o["repos"], query.get("sort"), query.get("direction")), paged=True)

        @app.get(f"{PREFIX}/users/<user>/orgs")
        def user_orgs(user: str) -> bottle.HTTPResponse:
            return self._serve("user_orgs", user, lambda orgs: [
                documents.summary(documents.org_document(login, org))
                for login, org in orgs.items() if user in org["members"]], user=True)

        @app.get(f"{PREFIX}/orgs/<org>/members")
        def members(org: str) -> bottle.HTTPResponse:
            return self._serve("members", org, lambda o: [
                documents.user(m, 1000 + i) for i, m in enumerate(o["members"])], paged=True)

        @app.put("/_demo/github/repos/<org>/<name>")
        def put_repo(org: str, name: str) -> bottle.HTTPResponse:
            self.put_repo(f"{org}/{name}", dict(bottle.request.json or {}))
            return _json(200, {"status": "changed"})

        @app.put("/_demo/github/rate_limit")
        def put_rate_limit() -> bottle.HTTPResponse:
            body = dict(bottle.request.json or {})
            self.set_rate_limit(body.get("remaining"), body.get("secondary_retry_after"))
            return _json(200, {"status": "rate limit set"})

        return app

    def _serve(self, kind: str, org: str, build: Any, paged: bool = False, user: bool = False,
               key: str = "") -> bottle.HTTPResponse:
        """``build`` makes the body from the organisation ``org`` (or, for a ``user``,
        from every organisation, the user being ``org``); None from it is a 404. Requests
        are counted by ``key`` (default: ``org``)."""
        counted = key or org
        return self._count(kind, counted, self._answer(kind, org, build, paged, user))

    def _answer(self, kind: str, org: str, build: Any, paged: bool, user: bool
                ) -> bottle.HTTPResponse:
        request = bottle.request
        given = request.get_header("Authorization", "")
        # As GitHub: anonymous requests are served; a token that is sent must be right.
        if given and self.token and not any(
                hmac.compare_digest(given.encode(), f"{s} {self.token}".encode())
                for s in ("Bearer", "token")):
            return _json(401, {"message": "Bad credentials"})
        with self._lock:
            if user:
                known = any(org in o["members"] for o in self.orgs.values())
                found = copy.deepcopy(self.orgs) if known else None
            else:
                found = copy.deepcopy(self.orgs.get(org))
            secondary = self.secondary_retry_after
            exhausted = self.remaining <= 0
        if secondary is not None:
            response = _json(403, {"message": "You have exceeded a secondary rate limit."})
            response.set_header("Retry-After", str(secondary))
            return self._limited(response)
        if exhausted:
            return self._limited(_json(403, {"message": "API rate limit exceeded for user."}))
        if found is None:
            return self._limited(_json(404, {"message": "Not Found"}))
        body = build(found)
        if body is None:
            return self._limited(_json(404, {"message": "Not Found"}))
        links = ""
        if paged:
            try:
                per_page = min(max(int(request.query.get("per_page", "30")), 1), 100)
                page = max(int(request.query.get("page", "1")), 1)
            except ValueError:
                return _json(422, {"message": "Validation Failed"})
            last = max((len(body) + per_page - 1) // per_page, 1)
            body = body[(page - 1) * per_page:page * per_page]
            links = _links(request, per_page, page, last)
        text = json.dumps(body, separators=(",", ":"))
        etag = 'W/"' + hashlib.sha256(text.encode()).hexdigest()[:40] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=60, s-maxage=60"}
        if links:
            headers["Link"] = links
        if not_modified(request.get_header("If-None-Match"), None, etag, None):
            # GitHub does not charge a 304 against the rate limit.
            return self._limited(bottle.HTTPResponse(None, 304, headers), charge=False)
        response = bottle.HTTPResponse(text, 200, {**headers,
                                                   "Content-Type": "application/json"})
        return self._limited(response)

    def _limited(self, response: bottle.HTTPResponse, charge: bool = True
                 ) -> bottle.HTTPResponse:
        with self._lock:
            if charge and response.status_code != 403:
                self.remaining = max(self.remaining - 1, 0)
            remaining, reset_at = self.remaining, self.reset_at
        response.set_header("X-RateLimit-Limit", str(RATE_LIMIT))
        response.set_header("X-RateLimit-Remaining", str(remaining))
        response.set_header("X-RateLimit-Reset", str(reset_at))
        response.set_header("X-RateLimit-Used", str(RATE_LIMIT - remaining))
        response.set_header("X-RateLimit-Resource", "core")
        return response

    def _count(self, kind: str, org: str, response: bottle.HTTPResponse
               ) -> bottle.HTTPResponse:
        with self._lock:
            self.requests[(kind, org, response.status_code)] += 1
        return response


def _links(request: bottle.BaseRequest, per_page: int, page: int, last: int) -> str:
    scheme, netloc, path = request.urlparts[:3]
    kept = "".join(f"{k}={v}&" for k, v in request.query.allitems()
                   if k not in {"per_page", "page"})  # as GitHub: the query stays
    url = f"{scheme}://{netloc}{path}?{kept}per_page={per_page}&page="
    links = []
    if page < last:
        links.append(f'<{url}{page + 1}>; rel="next"')
        links.append(f'<{url}{last}>; rel="last"')
    if page > 1:
        links.append(f'<{url}1>; rel="first"')
        links.append(f'<{url}{page - 1}>; rel="prev"')
    return ", ".join(links)


def _json(status: int, body: Any) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(json.dumps(body), status, {"Content-Type": "application/json"})
