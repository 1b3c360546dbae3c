"""HTTP client of one upstream API: conditional GETs with timeouts and error mapping."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from shared.errors import NotFound, UpstreamError, UpstreamTimeout
from shared.store.entry import Validator, conditional_headers
from shared.upstreams.kinds import Endpoint


@dataclass(frozen=True)
class Response:
    status: int  # 200 or 304
    body: Any  # parsed JSON of a 200
    validator: Validator
    next_url: str | None = None  # the Link header's rel="next"


class RateLimited(UpstreamError):
    """Upstream said it is rate limiting us (429, or a 403 with an exhausted or secondary
    limit, as GitHub does); ``retry_after`` is when to ask again, in seconds, if it said."""

    def __init__(self, message: str, retry_after: float | None, status: int = 429) -> None:
        super().__init__(message, upstream_status=status)
        self.retry_after = retry_after


class UpstreamClient:
    def __init__(
        self,
        endpoint: Endpoint,
        connect_timeout: float,
        read_timeout: float,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = endpoint.base_url.rstrip("/")
        self.page_size = endpoint.page_size
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or requests.Session()
        self.headers = {"Accept": "application/json", **endpoint.headers}
        # The rate limit the upstream last reported: (remaining, reset at, epoch s).
        self.rate_limit: tuple[int, float] | None = None

    def get(self, path: str, validator: Validator | None = None) -> Response:
        """GET base_url + path, conditionally when a validator is given."""
        headers = {**self.headers, **conditional_headers(validator)}
        try:
            r = self.session.get(
                self.base_url + path, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.Timeout as exc:
            raise UpstreamTimeout("upstream did not answer in time") from exc
        except requests.RequestException as exc:
            raise UpstreamError(f"upstream unreachable ({type(exc).__name__})") from exc
        remaining, reset = (r.headers.get("X-RateLimit-Remaining", ""),
                            r.headers.get("X-RateLimit-Reset", ""))
        if remaining.isdigit() and reset.isdigit():
            self.rate_limit = (int(remaining), float(reset))
        if r.status_code == 304 and validator is not None:
            return Response(304, None, _validator(r, fallback=validator), _next(r))
        if r.status_code == 404:
            raise NotFound("upstream has no such resource", upstream_status=404)
        if r.status_code == 429 or r.status_code == 403 and (
                r.headers.get("X-RateLimit-Remaining") == "0" or "Retry-After" in r.headers):
            raise RateLimited(f"upstream rate limit ({r.status_code})", _retry_after(r),
                              r.status_code)
        if r.status_code != 200:
            raise UpstreamError(f"upstream answered {r.status_code}", r.status_code)
        try:
            body = r.json()
        except ValueError as exc:
            raise UpstreamError("upstream sent malformed JSON", 200) from exc
        return Response(200, body, _validator(r), _next(r))

    def path_of(self, url: str) -> str:
        """The path, under this upstream's base URL, of a URL it sent (a next page's);
        UpstreamError for anything elsewhere, which is never followed."""
        if not url.startswith(self.base_url + "/"):
            raise UpstreamError("upstream's next page is outside its base URL")
        return url[len(self.base_url):]


def _validator(r: requests.Response, fallback: Validator | None = None) -> Validator:
    etag = r.headers.get("ETag")
    last_modified = r.headers.get("Last-Modified")
    if fallback is not None:
        etag = etag or fallback.etag
        last_modified = last_modified or fallback.last_modified
    return Validator(etag, last_modified)


def _retry_after(r: requests.Response) -> float | None:
    """Retry-After in seconds, else the wait until X-RateLimit-Reset (epoch seconds)."""
    value = r.headers.get("Retry-After", "")
    if value.isdigit():
        return float(value)
    reset = r.headers.get("X-RateLimit-Reset", "")
    if reset.isdigit():
        return max(float(reset) - time.time(), 0.0)
    return None


def _next(r: requests.Response) -> str | None:
    return r.links.get("next", {}).get("url")


class Recorder:
    """An UpstreamClient that notes each answer (status, or timeout / error) and its time."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self.page_size = client.page_size
        self.path_of = client.path_of
        self.responses: list[tuple[str, float]] = []
        client.rate_limit = None  # what this fetch's answers report, if anything

    def get(self, path: str, validator: Validator | None = None) -> Response:
        started = time.perf_counter()
        try:
            response = self.client.get(path, validator)
        except UpstreamError as exc:
            label = "timeout" if isinstance(exc, UpstreamTimeout) else str(
                exc.upstream_status or "error")
            self.responses.append((label, time.perf_counter() - started))
            raise
        except NotFound:
            self.responses.append(("404", time.perf_counter() - started))
            raise
        self.responses.append((str(response.status), time.perf_counter() - started))
        return response
