"""The Bottle app: combined views read from Redis, with HTTP caching done right.

Every view response carries a strong ETag derived from its parts, Last-Modified,
Cache-Control (max-age, stale-while-revalidate, stale-if-error), Age and an RFC 9211
Cache-Status. If-None-Match / If-Modified-Since get 304; HEAD works for every GET route.
Errors are JSON with one status per kind (shared/errors.py).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import bottle
import redis
from celery import Celery
from kombu.exceptions import OperationalError

from api import openapi
from api.access import Access, Limiter
from api.admin import admin_app
from api.local import Copies, Copy, Key, Outage, Tracker
from api.metrics import renderer
from api.reader import Enqueue, Read, Reader
from api.requests_log import SERVED, RequestLog
from api.responses import JSON_TYPE, encode, json_response
from shared.config.settings import MAX_WAIT, Settings
from shared.errors import CachedProxyError, InvalidRequest, NotFound, StoreUnavailable
from shared.policy import http
from shared.policy.serving import Served, copy_usable
from shared.queue import FETCH_TASK, QUEUES, REFRESH_TASK, celery_app
from shared.store import health
from shared.store.breaker import UpstreamBreaker
from shared.store.client import connect
from shared.store.entries import EntryStore, store_error
from shared.store.flights import Flights
from shared.store.inventory import Inventory
from shared.store.keys import Keys
from shared.store.schedule import Schedule
from shared.telemetry.logs import context_value
from shared.telemetry.metrics import RedisCollector
from shared.upstreams.kinds import View
from shared.upstreams.registry import subscribe, upstream_of, views

log = logging.getLogger(__name__)

CACHE = "cachedproxy"
UNREACHABLE = "cache store unavailable: Redis is unreachable"
BODY_CACHE_SIZE = 1024  # encoded view bodies kept per process, by ETag


class BodyCache:
    """Encoded view bodies by ETag, the least recently used dropped past ``size``: a
    body is a pure function of what its ETag is made of, so a hit builds it once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, etag: str) -> bytes | None:
        with self._lock:
            body = self._bodies.get(etag)
            if body is not None:
                self._bodies.move_to_end(etag)
            return body

    def put(self, etag: str, body: bytes) -> bytes:
        with self._lock:
            self._bodies[etag] = body
            if len(self._bodies) > self.size:
                self._bodies.popitem(last=False)
        return body


def cache_status(read: Read, now: float) -> str:
    """RFC 9211: hit; a miss forwarded upstream (collapsed onto another request's fetch
    when it led none); or stale data served while revalidating or because upstream failed."""
    ttl = f"ttl={int(read.fresh_for(now))}"
    if read.served is Served.HIT:
        return http.cache_status(CACHE, ["hit", ttl])
    if read.served in (Served.MISS, Served.COLLAPSED):
        collapsed = ["collapsed"] if read.served is Served.COLLAPSED else []
        return http.cache_status(CACHE, ["fwd=miss", "stored", *collapsed, ttl])
    params = ["fwd=stale"]
    if read.served is Served.STALE_IF_ERROR and read.upstream_status is not None:
        params.append(f"fwd-status={read.upstream_status}")
    detail = "stale-if-error" if read.served is Served.STALE_IF_ERROR else "stale-while-revalidate"
    return http.cache_status(CACHE, [*params, ttl, f"detail={detail}"])


def error_served(error: CachedProxyError) -> Served | None:
    """How an error came about, for the metrics and the log; None: it never reached the
    cache (a bad id)."""
    if error.cache_hit:
        return Served.NEGATIVE
    if error.status >= 500:
        return Served.ERROR
    return Served.MISS if error.upstream_status is not None else None


def error_response(error: CachedProxyError, negative_ttl: float = 0) -> bottle.HTTPResponse:
    """A JSON error; errors that went through the cache say how in Cache-Status."""
    headers: dict[str, str] = {}
    if error.status == 404 and (error.cache_hit or error.upstream_status == 404):
        headers["Cache-Control"] = f"max-age={int(negative_ttl)}"  # remembered that long
    if error.cache_hit:
        headers["Cache-Status"] = http.cache_status(CACHE, ["hit"])
    elif error.upstream_status is not None or error.status in (502, 503, 504):
        params = ["fwd=miss"]
        if error.upstream_status is not None:
            params.append(f"fwd-status={error.upstream_status}")
        if error.status == 404:
            params.append("stored")
        headers["Cache-Status"] = http.cache_status(CACHE, params)
    if error.status >= 500:
        headers["Cache-Control"] = "no-store"
    return json_response(error.status, error.body(), headers)


def _values(view: View, raw: dict[str, str]) -> dict[str, Any]:
    """The view's parameters, validated. A read-through path that is not exactly an
    allowlisted one (an invalid value, any query string) is a 404, as any other path."""
    try:
        if view.allowlist and bottle.request.query_string:
            raise InvalidRequest("a read-through path takes no query")
        return {p.name: p.parse(raw[p.name]) for p in view.params}
    except InvalidRequest:
        if view.allowlist:
            raise NotFound("no such path is allowlisted") from None
        raise


def _identity(values: dict[str, Any]) -> str:
    """What a view's parameters add to its ETag: the value of the only one, as ever."""
    if len(values) == 1:
        return str(next(iter(values.values())))
    return "&".join(f"{name}={value}" for name, value in sorted(values.items()))


def create_app(
    reader: Reader,
    current: Callable[[], Settings],
    readiness: Callable[[], dict[str, Any]] | None = None,
    metrics: Callable[[], tuple[bytes, str]] | None = None,
    admin: bottle.Bottle | None = None,
    tracker: Tracker | None = None,
) -> bottle.Bottle:
    """The app; ``current`` gives the settings in force now (they may change live);
    ``readiness`` checks Redis, workers and beat for /readyz; ``admin`` is mounted at
    /admin/ (api/admin.py); with a ``tracker`` of entry changes, fresh views are served
    from this process's copies without Redis (api/local.py)."""
    app = bottle.Bottle()
    bodies = BodyCache(BODY_CACHE_SIZE)

    copies, outage = Copies(), Outage()
    if tracker is not None:
        tracker.on_change = copies.drop

    def respond(key: Key, etag: str, modified: float, fresh_until: float, checked_at: float,
                status: str, body: Callable[[], bytes], keep: Copy | None = None
                ) -> bottle.HTTPResponse:
        """The view's response (a 304 when the client's copy matches); ``keep``: note it
        in this process's copies (``keep`` without its body)."""
        now = reader.clock()
        cache = current().cache
        headers = {
            "ETag": etag,
            "Last-Modified": http.http_date(modified),
            "Cache-Control": http.cache_control(
                fresh_until - now, cache.stale_while_revalidate, cache.stale_if_error),
            "Age": str(int(max(now - checked_at, 0.0))),
            "Cache-Status": status,
        }
        request = bottle.request
        unchanged = http.not_modified(request.get_header("If-None-Match"),
                                      request.get_header("If-Modified-Since"), etag, modified)
        encoded = None if unchanged else body()
        if keep is not None and not copies.touch(key, etag, fresh_until, checked_at,
                                                 keep.session):
            copies.put(key, dataclasses.replace(keep, body=encoded or body()))
        if encoded is None:
            return bottle.HTTPResponse(None, 304, headers)
        return bottle.HTTPResponse(encoded, 200, {**headers, "Content-Type": JSON_TYPE})

    def from_copy(key: Key, copy: Copy, served: Served, details: tuple[str, ...] = ()
                  ) -> bottle.HTTPResponse:
        bottle.request.environ[SERVED] = served
        status = http.cache_status(
            CACHE, ["hit", f"ttl={int(copy.fresh_until - reader.clock())}", *details])
        return respond(key, copy.etag, copy.modified, copy.fresh_until, copy.checked_at,
                       status, lambda: copy.body)

    def current_copy(key: Key, resources: list[str], now: float) -> Copy | None:
        """This process's copy of the view if it may be served as a hit without Redis:
        fresh, made in the current tracking session, nothing pending against it, and no
        read of its resources due to be recorded."""
        copy = copies.get(key)
        if (tracker is None or copy is None or not copy.session or now >= copy.fresh_until
                or reader.reads.pending(resources, now)):
            return None
        if tracker.current(now) != copy.session:
            return None
        return copy if copies.get(key) is copy else None  # the notices applied may drop it

    def without_store(key: Key, error: CachedProxyError) -> bottle.HTTPResponse:
        """Redis is unreachable: this process's copy of the view if still usable."""
        copy = copies.get(key)
        if copy is None or not copy_usable(copy.fresh_until, reader.clock(),
                                           current().cache.stale_if_error):
            bottle.request.environ[SERVED] = Served.ERROR
            return error_response(error)
        return from_copy(key, copy, Served.LOCAL, ("detail=store-unavailable",))

    def serve(view: View) -> Callable[..., bottle.HTTPResponse]:
        def handler(**raw: str) -> bottle.HTTPResponse:
            try:
                values = _values(view, raw)
                key = (view.name, _identity(values))
                resources = view.resources(values, current())
                now = reader.clock()
                copy = current_copy(key, resources, now)
                if copy is not None:
                    # No I/O on this path: let the server's other requests run (under
                    # gevent a connection sending requests back to back would hold it).
                    time.sleep(0)
                    return from_copy(key, copy, Served.HIT)
                if not outage.should_try(now):
                    return without_store(key, StoreUnavailable(UNREACHABLE))
                # A copy made from this read is current only if none of its entries
                # changed meanwhile (as told by the notices applied after the read).
                session = tracker.current(now) if tracker is not None else 0
                notice = tracker.changes if tracker is not None else 0
                try:
                    read = reader.read(resources, view.not_found)
                except (redis.ConnectionError, redis.TimeoutError):
                    outage.failed(reader.clock())
                    return without_store(key, StoreUnavailable(UNREACHABLE))
                except redis.RedisError as exc:
                    raise store_error(exc) from exc
                outage.succeeded()
            except CachedProxyError as exc:
                bottle.request.environ[SERVED] = error_served(exc)
                return error_response(exc, negative_ttl=current().cache.negative_ttl)
            except Exception:
                log.exception("request failed", extra={"view": view.name, "params": raw})
                bottle.request.environ[SERVED] = Served.ERROR
                return error_response(CachedProxyError())
            bottle.request.environ[SERVED] = read.served
            etag = http.strong_etag(view.name, key[1], *(e.digest for e in read.entries))

            def body() -> bytes:
                encoded = bodies.get(etag)
                if encoded is None:  # the ETag names the parameters and the parts' data
                    encoded = bodies.put(etag, encode(
                        view.build(values, [e.data for e in read.entries])))
                return encoded

            if tracker is not None and (tracker.current(reader.clock()) != session
                                        or tracker.changed_since(resources, notice)):
                session = 0
            made = Copy(b"", etag, max(e.fetched_at for e in read.entries),
                        min(e.fresh_until for e in read.entries),
                        min(e.checked_at for e in read.entries), tuple(resources), session)
            return respond(key, etag, made.modified, made.fresh_until, made.checked_at,
                           cache_status(read, reader.clock()), body, keep=made)

        return handler

    for view in views():
        handler = serve(view)
        route = view.route.rstrip("/").replace("{", "<").replace("}", ">")
        app.route(route, "GET", handler, name=view.name)
        app.route(route + "/", "GET", handler)  # the trailing slash is optional

    @app.get("/healthz")
    def healthz() -> bottle.HTTPResponse:
        return json_response(200, {"status": "ok"})

    @app.get("/readyz")
    def readyz() -> bottle.HTTPResponse:
        report = readiness() if readiness else {"status": "ready", "checks": {}}
        return json_response(200 if report["status"] == "ready" else 503, report,
                             {"Cache-Control": "no-store"})

    @app.get("/metrics")
    def metrics_page() -> bottle.HTTPResponse:
        if metrics is None:
            raise bottle.HTTPError(404)
        try:
            body, content_type = metrics()
        except (redis.ConnectionError, redis.TimeoutError):
            return error_response(StoreUnavailable("metrics store unavailable"))
        return bottle.HTTPResponse(body, 200, {"Content-Type": content_type})

    spec = encode(openapi.spec(admin=admin is not None))

    @app.get("/openapi.json")
    def openapi_json() -> bottle.HTTPResponse:
        return bottle.HTTPResponse(spec, 200, {"Content-Type": JSON_TYPE})

    def http_error(err: bottle.HTTPError) -> bytes:
        bottle.response.content_type = JSON_TYPE
        status = err.status_code
        reason = err.status_line.partition(" ")[2].lower()
        message = {404: "no such route", 405: "method not allowed"}.get(
            status, "internal error" if status >= 500 else reason)
        if status >= 500:
            log.error("unhandled error", extra={"error": repr(err.exception)})
        if status == 405:  # every GET route answers HEAD too
            allowed = [m.strip() for m in err.headers.get("Allow", "").split(",") if m.strip()]
            err.headers["Allow"] = ", ".join(allowed + ["HEAD"] * ("GET" in allowed))
        return encode({"error": {"status": status, "code": _code(status), "message": message}})

    app.default_error_handler = http_error
    if admin is not None:
        admin.default_error_handler = http_error
        app.mount("/admin/", admin)
    return app


def _code(status: int) -> str:
    if status >= 500:
        return "internal"
    return {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")


def celery_enqueue(queue: Celery) -> Enqueue:
    def enqueue(resource: str, token: str, background: bool) -> None:
        send(queue, FETCH_TASK, (resource, token), {
            "request_id": context_value("request_id"), "background": background})

    return enqueue


def send(queue: Celery, task: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Send a task; a broker that cannot take it is a 503 (store_full when out of
    memory)."""
    try:
        queue.send_task(task, args=args, kwargs=kwargs)
    except (OperationalError, redis.RedisError) as exc:
        cause = _redis_cause(exc)
        if isinstance(cause, redis.exceptions.OutOfMemoryError):
            raise store_error(cause) from exc
        raise StoreUnavailable("task queue unavailable") from exc
    except Exception as exc:
        # kombu can fail in its own ways after a broker error (a channel closed under a
        # concurrent publisher); the answer is the same.
        log.warning("enqueue failed", exc_info=True)
        raise StoreUnavailable("task queue unavailable") from exc


def _redis_cause(exc: BaseException) -> BaseException:
    """The Redis error under kombu's wrapping, or ``exc`` itself."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, redis.RedisError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def app_from_settings(
    settings: Settings, current: Callable[[], Settings] | None = None
) -> RequestLog:
    """Wire the app to Redis and the task queue; call once per server process.

    ``settings`` are those the process started with (connections, prefix); ``current``
    gives the settings in force at each request, when they follow Consul.
    """
    current = current or (lambda: settings)
    # One retry: a connection Redis closed (a restart) is replaced at once, and a Redis
    # that is down is known as such at once (api/local.py).
    client = connect(settings.redis, retries=1)
    broker = connect(settings.redis, broker=True) if settings.redis.broker_url else client
    # Blocking waits need a socket timeout above the longest wait they may be given.
    waiting = connect(settings.redis, MAX_WAIT + settings.redis.socket_timeout, retries=1)
    keys = Keys(settings.redis.key_prefix)
    queue = celery_app(settings, main="cachedproxy-api")
    reader = Reader(
        EntryStore(client, keys),
        Flights(client, keys),
        Schedule(client, keys),
        UpstreamBreaker(client, keys),
        celery_enqueue(queue),
        current,
        waiting,
    )
    tracker = Tracker(client, keys.entry(""), lambda _: None)

    def build() -> bottle.Bottle:
        return create_app(
            reader, current,
            lambda: health.readiness(client, keys, current().refresh.tick_interval),
            renderer(RedisCollector(client, keys, [keys.queue(q) for q in QUEUES], upstream_of,
                                    broker)),
            admin_app(Inventory(client, keys),
                      lambda resource: send(queue, REFRESH_TASK, (resource,),
                                            {"on_demand": True}),
                      current, reader.clock),
            tracker,
        )

    guarded = Access(build(), lambda: current().access, settings.api.host,
                     Limiter(client, keys), reader.clock)
    served = RequestLog(guarded)

    def rebuild() -> None:
        guarded.app = build()  # the catalogue changed: its routes, in one swap

    subscribe(rebuild)
    return served
