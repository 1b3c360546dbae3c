"""The admin API under ``/admin/``: what is cached, purge, refresh now.

Off unless ``[admin] token`` (``ADMIN_TOKEN``) is set: then every ``/admin/`` path is a
404, as any unknown path. With a token, requests carry ``Authorization: Bearer <token>``
(compared in constant time, never logged); without it, 401 with ``WWW-Authenticate``.

    GET    /admin/entries?upstream=&prefix=&live=&limit=&after=
                                                  entries, in name order, a page at a time
    DELETE /admin/entries/<resource>              purge one resource
    POST   /admin/purge  {"upstream": "github"} | {"prefix": "github:repos:"}
                         | {"view": "<name>", "params": {...}} | {"tag": "event:<id>"}
                         | {"resources": [...]}
    POST   /admin/refresh/<resource>              a conditional refresh, enqueued now (202)
    GET    /admin/freshness                       each upstream's budget plan
    GET    /admin/upstreams                       each upstream's state, budget, lag
    GET    /admin/status                          the status page's figures (JSON)
    GET    /admin/                                the status page (HTML; a login form
    POST   /admin/login, /admin/logout             and a cookie for browsers)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import bottle

from api.admin_page import Overview, bearer_ok, mount_status_page
from api.responses import json_response
from shared.cli import environ, guarded
from shared.config.settings import Settings
from shared.errors import CachedProxyError, InvalidRequest, NotFound, Unauthorized
from shared.policy.status import rfc3339
from shared.store.entries import store_errors
from shared.store.inventory import Inventory, Listed
from shared.upstreams.registry import kind_of, tagged, upstreams, views

log = logging.getLogger(__name__)
MAX_PAGE = 1000

Refresh = Callable[[str], None]  # resource -> a refresh enqueued
UpstreamStates = Callable[[float], list[dict[str, Any]]]  # now -> each upstream's state


def _error(error: CachedProxyError, headers: dict[str, str] | None = None) -> bottle.HTTPResponse:
    return json_response(error.status, error.body(), headers)


def admin_app(inventory: Inventory, refresh: Refresh, current: Callable[[], Settings],
              clock: Callable[[], float], status: UpstreamStates, overview: Overview
              ) -> bottle.Bottle:
    """The admin API (/admin/): entries, purge, refresh now, budget plans, upstreams'
    state, and the status page; behind ``ADMIN_TOKEN``."""
    app = bottle.Bottle()
    mount_status_page(app, current, clock, overview)

    def guarded(handler: Callable[..., bottle.HTTPResponse]) -> Callable[..., Any]:
        def check(**kwargs: Any) -> bottle.HTTPResponse:
            token = current().admin.token
            if not token:  # switched off live since routing
                return _error(NotFound("no such route"))
            if not bearer_ok(token):
                return _error(Unauthorized("admin token missing or wrong"),
                              {"WWW-Authenticate": 'Bearer realm="cachedproxy admin"'})
            try:
                with store_errors():
                    return handler(**kwargs)
            except CachedProxyError as exc:
                return _error(exc)

        return check

    @app.get("/entries", apply=[guarded])
    def entries() -> bottle.HTTPResponse:
        query = bottle.request.query
        try:
            limit = int(query.get("limit", "100"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be 1-{MAX_PAGE}")
        live = {"": None, "true": True, "false": False}.get(query.get("live", ""), "bad")
        if live == "bad":
            raise InvalidRequest("live must be true (refreshed ahead) or false (idle)")
        prefix = scoped_prefix(query.get("upstream", ""), query.get("prefix", ""))
        listed = inventory.entries(prefix, limit, query.get("after", ""), live)  # type: ignore[arg-type]
        now = clock()
        body: dict[str, Any] = {"entries": [described(e, now) for e in listed]}
        if len(listed) == limit:
            body["next"] = {"after": listed[-1].resource}
        return json_response(200, body)

    @app.delete("/entries/<resource:path>", apply=[guarded])
    def purge_one(resource: str) -> bottle.HTTPResponse:
        kind_of(resource)  # 400 for anything that is not a resource
        purged = inventory.purge([resource])
        if not purged:
            raise NotFound("no such entry")
        log.info("purged", extra={"resources": purged})
        return json_response(200, {"purged": purged})

    @app.post("/purge", apply=[guarded])
    def purge() -> bottle.HTTPResponse:
        spec = json_body()
        if not isinstance(spec, dict) or len(spec.keys() - {"params"}) != 1:
            raise InvalidRequest('send a JSON object, one of {"upstream"}, {"prefix"}, '
                                 '{"view", "params"}, {"tag"}, {"resources"}')
        if "tag" in spec and isinstance(spec["tag"], str):
            purged = purge_tagged(inventory, spec["tag"])
        elif "upstream" in spec:
            if spec["upstream"] not in upstreams():
                raise NotFound("no such upstream")
            purged = inventory.purge_prefix(f"{spec['upstream']}:")
        elif "prefix" in spec and isinstance(spec["prefix"], str) and spec["prefix"]:
            purged = inventory.purge_prefix(spec["prefix"])
        elif "view" in spec:
            view = next((v for v in views() if v.name == spec["view"]), None)
            raw = spec.get("params")
            if view is None:
                raise NotFound("no such view")
            if not isinstance(raw, dict) or set(raw) != {p.name for p in view.params}:
                raise InvalidRequest(f"params must name {', '.join(p.name for p in view.params)}")
            values = {p.name: p.parse(str(raw[p.name])) for p in view.params}
            purged = inventory.purge(view.resources(values, current()))
        elif "resources" in spec and isinstance(spec["resources"], list) and all(
                isinstance(r, str) for r in spec["resources"]):
            for resource in spec["resources"]:
                kind_of(resource)
            purged = inventory.purge(spec["resources"])
        else:
            raise InvalidRequest("nothing to purge")
        log.info("purged", extra={"count": len(purged)})
        return json_response(200, {"purged": purged})

    @app.post("/refresh/<resource:path>", apply=[guarded])
    def refresh_now(resource: str) -> bottle.HTTPResponse:
        kind_of(resource)
        refresh(resource)
        return json_response(202, {"status": "enqueued", "resource": resource,
                           "see": f"/admin/entries?prefix={resource}&limit=1"})

    @app.get("/freshness", apply=[guarded])
    def freshness() -> bottle.HTTPResponse:
        return json_response(200, {"upstreams": inventory.plans()})

    @app.get("/upstreams", apply=[guarded])
    def upstreams_state() -> bottle.HTTPResponse:
        now = clock()
        return json_response(200, {"at": rfc3339(now), "upstreams": status(now)})

    return app


def json_body() -> Any:
    """The request's body as JSON whatever its Content-Type (``curl -d`` sends a form's),
    or None when it is not JSON."""
    try:
        return json.loads(bottle.request.body.read() or b"null")
    except ValueError:  # UnicodeDecodeError too
        return None


def mount(app: bottle.Bottle, admin: bottle.Bottle, current: Callable[[], Settings]) -> None:
    """Mount ``admin`` at /admin/ of ``app``. While no token is configured every path
    under /admin/ is 404 whatever the method, decided before routing: a 405 would tell
    which methods a path has."""
    app.mount("/admin/", admin)

    @app.hook("before_request")
    def off_without_a_token() -> None:
        if bottle.request.path.startswith("/admin/") and not current().admin.token:
            raise _error(NotFound("no such route"))


def scoped_prefix(upstream: str, prefix: str) -> str:
    """The resource prefix of a listing by upstream and/or prefix."""
    if not upstream:
        return prefix
    if upstream not in upstreams():
        raise NotFound("no such upstream")
    if prefix and not prefix.startswith(f"{upstream}:"):
        raise InvalidRequest(f"prefix must start with {upstream}: to list upstream {upstream}")
    return prefix or f"{upstream}:"


def purge_tagged(inventory: Inventory, tag: str) -> list[str]:
    """Purge the resources carrying ``tag``, with every query's answers of each (a
    read-through's ``?sort=...``); returns what was purged."""
    resources = resources_tagged(tag)
    return inventory.purge(resources) + [
        purged for r in resources if kind_of(r).query
        for purged in inventory.purge_prefix(f"{r}?")]


def resources_tagged(tag: str) -> list[str]:
    """The resources whose kinds carry a tag like ``tag``, or NotFound saying none does."""
    resources = tagged(tag)
    if not resources:
        raise NotFound(f"no resource kind in the catalogue carries a tag like {tag!r}")
    return resources


def described(listed: Listed, now: float) -> dict[str, Any]:
    """An entry as the admin API and command show it: with its upstream and tags."""
    try:
        kind = kind_of(listed.resource)
    except CachedProxyError:  # its kind left the catalogue; it ages out
        return {**listed.as_json(now), "upstream": None, "tags": []}
    return {**listed.as_json(now), "upstream": kind.upstream,
            "tags": kind.tags_of(listed.resource)}


def main(argv: list[str] | None = None) -> int:
    """``python -m api.admin entries|purge ...``: the same operations on the configured
    Redis (beside ``make run``, its own: run/env), for an operator at the machine (no
    token: access to Redis is the right). Errors are one JSON line on stderr."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m api.admin", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("entries", help="list cached entries, one JSON line each")
    listing.add_argument("--prefix", default="", help="resources starting with this")
    listing.add_argument("--upstream", default="", help="entries of this upstream")
    state = listing.add_mutually_exclusive_group()
    state.add_argument("--live", dest="live", action="store_const", const=True,
                       help="only entries refreshed ahead")
    state.add_argument("--idle", dest="live", action="store_const", const=False,
                       help="only entries not refreshed ahead")
    listing.add_argument("--limit", type=int, default=MAX_PAGE)
    purging = commands.add_parser("purge", help="purge entries; prints what was purged")
    what = purging.add_mutually_exclusive_group(required=True)
    what.add_argument("--upstream", help="every entry of this upstream")
    what.add_argument("--prefix", help="every entry whose resource starts with this")
    what.add_argument("--tag", help="every resource carrying this tag (catalogue tags)")
    what.add_argument("--resource", action="append", help="this resource (repeatable)")
    args = parser.parse_args(argv)
    return guarded(lambda: _command(args))


def _command(args: Any) -> int:
    import time

    from shared.config.settings import load_settings
    from shared.store.client import connect
    from shared.store.keys import Keys

    settings = load_settings(environ())
    inventory = Inventory(connect(settings.redis), Keys(settings.redis.key_prefix))
    if args.command == "entries":
        now = time.time()
        prefix = scoped_prefix(args.upstream, args.prefix)
        for listed in inventory.entries(prefix, args.limit, live=args.live):
            print(json.dumps(described(listed, now), ensure_ascii=False))
        return 0
    if args.tag:
        purged = purge_tagged(inventory, args.tag)
    elif args.upstream:
        if args.upstream not in upstreams():
            raise NotFound(f"no upstream {args.upstream!r}")
        purged = inventory.purge_prefix(f"{args.upstream}:")
    elif args.prefix:
        purged = inventory.purge_prefix(args.prefix)
    else:
        for resource in args.resource:
            kind_of(resource)
        purged = inventory.purge(args.resource)
    print(json.dumps({"purged": purged}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
