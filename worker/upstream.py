"""HTTP client of one upstream API: conditional GETs with timeouts and error mapping,
at most ``max_in_flight`` at once, over a keep-alive pool of that size."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from shared.errors import NotFound, UpstreamError, UpstreamTimeout
from shared.policy.http import UpstreamFreshness, upstream_freshness
from shared.store.entry import Validator, conditional_headers
from shared.upstreams.kinds import Endpoint


@dataclass(frozen=True)
class Response:
    """One upstream answer: a 200's JSON or a 304, its validator, next page and rate limit."""

    status: int  # 200 or 304
    body: Any  # parsed JSON of a 200
    validator: Validator
    next_url: str | None = None  # the Link header's rel="next"
    rate_limit: tuple[int, float] | None = None  # what upstream reported: remaining, reset at
    freshness: UpstreamFreshness = UpstreamFreshness()  # what its caching headers say


class RateLimited(UpstreamError):
    """Upstream said it is rate limiting us (429, or a 403 with an exhausted or secondary
    limit, as GitHub does); ``retry_after`` is when to ask again, in seconds, if it said."""

    def __init__(self, message: str, retry_after: float | None, status: int = 429,
                 reported: tuple[int, float] | None = None) -> None:
        super().__init__(message, upstream_status=status, retry_after=retry_after)
        self.reported = reported  # the rate limit it reported: remaining, reset at


class UpstreamClient:
    """One upstream's client, shared by every fetch of a worker process: each request
    takes one of ``max_in_flight`` slots (waiting for one at most until its deadline)."""

    def __init__(
        self,
        endpoint: Endpoint,
        connect_timeout: float,
        read_timeout: float,
        session: requests.Session | None = None,
        max_in_flight: int = 32,
    ) -> None:
        self.base_url = endpoint.base_url.rstrip("/")
        self.page_size = endpoint.page_size
        self.timeout = (connect_timeout, read_timeout)
        self.max_in_flight = max_in_flight
        self.session = session or pooled_session(self.base_url, max_in_flight)
        self.headers = {"Accept": "application/json", **endpoint.headers}
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def get(self, path: str, validator: Validator | None = None,
            deadline: float | None = None) -> Response:
        """GET base_url + path, conditionally when a validator is given; by ``deadline``
        (``time.monotonic()``) it has answered, or UpstreamTimeout is raised."""
        if not self._slots.acquire(timeout=_left(deadline)):
            raise UpstreamTimeout(f"no free connection to the upstream in time "
                                  f"({self.max_in_flight} requests in flight)")
        try:
            return self._get(path, validator, deadline)
        finally:
            self._slots.release()

    def _get(self, path: str, validator: Validator | None, deadline: float | None
             ) -> Response:
        headers = {**self.headers, **conditional_headers(validator)}
        left = _left(deadline)
        timeout = self.timeout if left is None else (
            min(self.timeout[0], left), min(self.timeout[1], left))
        try:
            r = self.session.get(self.base_url + path, headers=headers, timeout=timeout,
                                 allow_redirects=False, stream=True)
            content = _content(r, deadline)
        except (requests.Timeout, urllib3.exceptions.ReadTimeoutError) as exc:
            raise UpstreamTimeout("upstream did not answer in time") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise UpstreamError(f"upstream unreachable ({type(exc).__name__})") from exc
        remaining, reset = (r.headers.get("X-RateLimit-Remaining", ""),
                            r.headers.get("X-RateLimit-Reset", ""))
        reported = (int(remaining), float(reset)) if remaining.isdigit() and reset.isdigit() \
            else None
        if r.status_code == 304 and validator is not None:
            return Response(304, None, _validator(r, fallback=validator), _next(r), reported,
                            _freshness(r))
        if r.status_code == 404:
            raise NotFound("upstream has no such resource", upstream_status=404)
        if r.status_code == 429 or r.status_code == 403 and (
                r.headers.get("X-RateLimit-Remaining") == "0" or "Retry-After" in r.headers):
            raise RateLimited(f"upstream rate limit ({r.status_code})", _retry_after(r),
                              r.status_code, reported)
        if r.status_code != 200:
            raise UpstreamError(f"upstream answered {r.status_code}", r.status_code)
        try:
            body = json.loads(content)
        except ValueError as exc:
            raise UpstreamError("upstream sent malformed JSON", 200) from exc
        return Response(200, body, _validator(r), _next(r), reported, _freshness(r))

    def path_of(self, url: str) -> str:
        """The path, under this upstream's base URL, of a URL it sent (a next page's);
        UpstreamError for anything elsewhere, which is never followed."""
        if not url.startswith(self.base_url + "/"):
            raise UpstreamError("upstream's next page is outside its base URL")
        return url[len(self.base_url):]


def pooled_session(base_url: str, size: int) -> requests.Session:
    """A session keeping up to ``size`` connections to the upstream alive, with the
    environment's proxy and CA settings (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, ...)
    resolved once: requests would read the whole environment again for every request."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    found = session.merge_environment_settings(base_url, {}, None, None, None)
    session.trust_env = False
    session.proxies, session.verify, session.cert = (found["proxies"], found["verify"],
                                                     found["cert"])
    return session


def _left(deadline: float | None) -> float | None:
    """Seconds until ``deadline``; UpstreamTimeout once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise UpstreamTimeout("the fetch ran out of time")
    return left


def _content(r: requests.Response, deadline: float | None) -> bytes:
    """The body, decoded, read a socket read at a time so that an upstream trickling it
    out cannot hold the fetch past its deadline (each read waits at most the time left;
    a read of a fixed size would wait for all of it)."""
    chunks = []
    while chunk := r.raw.read1(65536, decode_content=True):
        chunks.append(chunk)
        if deadline is not None and time.monotonic() > deadline:
            r.close()
            raise UpstreamTimeout("upstream did not finish its answer in time")
    return b"".join(chunks)


def _freshness(r: requests.Response) -> UpstreamFreshness:
    h = r.headers
    return upstream_freshness(h.get("Cache-Control"), h.get("Expires"), h.get("Date"),
                              h.get("Age"))


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

    def __init__(self, client: UpstreamClient, deadline: float | None = None) -> None:
        self.client = client
        self.deadline = deadline  # time.monotonic() by which every request has answered
        self.page_size = client.page_size
        self.path_of = client.path_of
        self.responses: list[tuple[str, float]] = []
        self.rate_limit: tuple[int, float] | None = None  # the last an answer reported

    def get(self, path: str, validator: Validator | None = None) -> Response:
        """The client's ``get``, recording each response for the metrics and the budget."""
        started = time.perf_counter()
        try:
            response = self.client.get(path, validator, self.deadline)
        except UpstreamError as exc:
            if isinstance(exc, RateLimited):
                self.rate_limit = exc.reported or self.rate_limit
            label = "timeout" if isinstance(exc, UpstreamTimeout) else str(
                exc.upstream_status or "error")
            self.responses.append((label, time.perf_counter() - started))
            raise
        except NotFound:
            self.responses.append(("404", time.perf_counter() - started))
            raise
        self.responses.append((str(response.status), time.perf_counter() - started))
        self.rate_limit = response.rate_limit or self.rate_limit
        return response
