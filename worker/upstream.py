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


class RateLimited(UpstreamError):
    """Upstream answered 429; ``retry_after`` is its Retry-After in seconds, if given."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message, upstream_status=429)
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
        if r.status_code == 304 and validator is not None:
            return Response(304, None, _validator(r, fallback=validator))
        if r.status_code == 404:
            raise NotFound("upstream has no such resource", upstream_status=404)
        if r.status_code == 429:
            raise RateLimited("upstream rate limit (429)", _retry_after(r))
        if r.status_code != 200:
            raise UpstreamError(f"upstream answered {r.status_code}", r.status_code)
        try:
            body = r.json()
        except ValueError as exc:
            raise UpstreamError("upstream sent malformed JSON", 200) from exc
        return Response(200, body, _validator(r))


def _validator(r: requests.Response, fallback: Validator | None = None) -> Validator:
    etag = r.headers.get("ETag")
    last_modified = r.headers.get("Last-Modified")
    if fallback is not None:
        etag = etag or fallback.etag
        last_modified = last_modified or fallback.last_modified
    return Validator(etag, last_modified)


def _retry_after(r: requests.Response) -> float | None:
    value = r.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


class Recorder:
    """An UpstreamClient that notes each answer (status, or timeout / error) and its time."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self.page_size = client.page_size
        self.responses: list[tuple[str, float]] = []

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
