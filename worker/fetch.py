"""Fetch one resource from its upstream: conditionally, following pages, trimmed.

Paginated resources keep one validator and one trimmed page per upstream page, so a
refresh sends a conditional GET per page and a page answered 304 reuses what we have.
Pages are found by offset and an item count, or by the ``Link`` header's next page
(GitHub); a next page outside the upstream's base URL is never followed. What the
catalogue derives from all items (a sorted top list) is computed here, once per change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from shared.config.settings import Settings
from shared.errors import UpstreamError
from shared.policy.http import bounded
from shared.store.entry import Entry, Validator, fetched, revalidated
from shared.upstreams.kinds import LinkPaging, Pagination, ResourceKind
from shared.upstreams.registry import upstreams
from worker.upstream import Response


class Upstream(Protocol):
    """What fetching needs of an upstream client (UpstreamClient, Recorder, fakes)."""

    page_size: int

    def get(self, path: str, validator: Validator | None = None) -> Response:
        """One request for ``path``, conditional with ``validator`` when given."""

    def path_of(self, url: str) -> str:
        """The path (and query) of one of the upstream's own URLs (a next page)."""

MAX_PAGES = 1000


@dataclass(frozen=True)
class Fetched:
    """What a fetch got: the entry to store, whether the data changed, requests made."""

    entry: Entry
    changed: bool  # False: upstream answered 304 to every request
    requests: int


def fetch(
    client: Upstream,
    kind: ResourceKind,
    resource: str,
    previous: Entry | None,
    now: float,
    ttl: float,
    follow: tuple[float, float] | None = None,
) -> Fetched:
    """Fetch ``resource``: conditionally against ``previous`` when it holds good data.
    Fresh for ``ttl`` seconds; with ``follow`` (the bounds of an upstream whose caching
    headers are followed), for what the answer says within them (``ttl`` if it says
    nothing), and an answer it forbids storing (no-store, private) is an UpstreamError."""
    if previous is not None and previous.status != 200:
        previous = None
    request = _Fetch(client, kind, resource, previous, now, ttl, follow)
    if kind.pagination is None:
        return request.single()
    if isinstance(kind.pagination, LinkPaging):
        return request.linked_pages(kind.pagination)
    return request.pages()


@dataclass
class _Fetch:
    client: Upstream
    kind: ResourceKind
    resource: str
    previous: Entry | None
    now: float
    ttl: float  # as configured; then, with ``follow``, the shortest an answer said
    follow: tuple[float, float] | None = None
    followed: bool = False  # an answer said its TTL already (pages: the shortest counts)

    def __post_init__(self) -> None:
        self.configured = self.ttl

    def _get(self, path: str, stored: Validator | None) -> Response:
        """One request; with upstream freshness followed, the TTL it says is taken (the
        shortest of a resource's pages)."""
        response = self.client.get(path, stored)
        if self.follow is not None:
            said = response.freshness
            if not said.store:
                raise UpstreamError("upstream forbids storing this answer (Cache-Control: "
                                    "no-store or private); it is not cached",
                                    upstream_status=response.status)
            ttl = bounded(said.max_age, *self.follow, otherwise=self.configured)
            self.ttl = min(ttl, self.ttl) if self.followed else ttl
            self.followed = True
        return response

    def single(self) -> Fetched:
        previous = self.previous
        stored = previous.validator(0) if previous is not None else None
        response = self._get(self.kind.path_for(self.resource), stored)
        if response.status == 304 and previous is not None:
            return Fetched(revalidated(previous, self.now, self.ttl), changed=False, requests=1)
        entry = fetched(self.kind.trim(response.body), (response.validator,), self.now, self.ttl)
        return Fetched(entry, changed=True, requests=1)

    def pages(self) -> Fetched:
        kind, previous, page_size = self.kind, self.previous, self.client.page_size
        assert isinstance(kind.pagination, Pagination)
        paging = kind.pagination
        path = kind.path_for(self.resource)
        separator = "&" if "?" in path else "?"
        old_pages: list[Any] = previous.data["pages"] if previous is not None else []
        count = previous.data["count"] if previous is not None else 0
        pages: list[Any] = []
        validators: list[Validator] = []
        changed = False
        offset = 0
        while True:
            page = len(pages)
            if page >= MAX_PAGES:
                raise UpstreamError(f"upstream has more than {MAX_PAGES} pages")
            stored = previous.validator(page, page_size) if previous is not None else None
            response = self._get(
                f"{path}{separator}{paging.limit_param}={page_size}&{paging.offset_param}={offset}",
                stored,
            )
            if response.status == 304 and page < len(old_pages):
                pages.append(old_pages[page])
            else:
                changed = True
                count = paging.total(response.body)
                pages.append(kind.trim(response.body))
            validators.append(response.validator)
            offset += page_size
            if offset >= count:
                break
        return self._paged(count, pages, validators, changed)

    def linked_pages(self, paging: LinkPaging) -> Fetched:
        previous, page_size = self.previous, self.client.page_size
        path = self.kind.path_for(self.resource)
        separator = "&" if "?" in path else "?"
        old_pages: list[Any] = previous.data["pages"] if previous is not None else []
        pages: list[Any] = []
        validators: list[Validator] = []
        changed = False
        next_path: str | None = f"{path}{separator}{paging.size_param}={page_size}"
        while next_path is not None:
            page = len(pages)
            if page >= MAX_PAGES:
                raise UpstreamError(f"upstream has more than {MAX_PAGES} pages")
            stored = previous.validator(page, page_size) if previous is not None else None
            response = self._get(next_path, stored)
            if response.status == 304 and page < len(old_pages):
                pages.append(old_pages[page])
                if response.next_url is None and page + 1 < len(old_pages):
                    # A 304 that does not say where the next page is: ask for it all.
                    return replace(self, previous=None).linked_pages(paging)
            else:
                changed = True
                pages.append(self.kind.trim(response.body))
            validators.append(response.validator)
            next_path = (self.client.path_of(response.next_url)
                         if response.next_url is not None else None)
        count = sum(len(p) if isinstance(p, list) else 1 for p in pages)
        return self._paged(count, pages, validators, changed)

    def _paged(self, count: int, pages: list[Any], validators: list[Validator],
               changed: bool) -> Fetched:
        previous = self.previous
        if not changed and previous is not None and len(pages) == len(previous.data["pages"]):
            return Fetched(revalidated(previous, self.now, self.ttl), changed=False,
                           requests=len(pages))
        data: dict[str, Any] = {"count": count, "pages": pages}
        if self.kind.derive is not None:
            items = [item for p in pages for item in (p if isinstance(p, list) else [p])]
            data["derived"] = self.kind.derive(items)
        entry = fetched(data, tuple(validators), self.now, self.ttl, self.client.page_size)
        return Fetched(entry, changed=True, requests=len(pages))


def upstream_bounds(settings: Settings, upstream: str) -> tuple[float, float] | None:
    """The bounds of an upstream's own TTLs when its answers' caching headers are followed
    (catalogue ``freshness = "upstream"``): its min_ttl (else 1 s) and max_age (else
    refresh.max_age); None when its configured TTL is."""
    found = upstreams().get(upstream)
    if found is None or found.freshness != "upstream":
        return None
    section = settings.section(upstream)
    return float(section.min_ttl or 1), float(section.max_age or settings.refresh.max_age)
