"""The Bottle app: a route per view of the catalogue (api/views.py), the health,
metrics and OpenAPI pages, /admin/ (api/admin.py), and the wiring to Redis and the task
queue. HEAD works for every GET route; errors are JSON with one status per kind
(shared/errors.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import bottle
import redis
from bottle import HTTP_CODES
from celery import Celery
from kombu.exceptions import OperationalError

from api import openapi
from api.access import Access
from api.admin import admin_app
from api.admin import mount as mount_admin
from api.bridge import Bridge, beyond_path
from api.copies import Copies
from api.headers import error_response
from api.limits import Limiter, MissLimit
from api.metrics import renderer
from api.reader import Enqueue, Reader
from api.requests_log import ROUTE, RequestLog
from api.responses import JSON_TYPE, encode, error_body, json_response
from api.shelf import Shelf
from api.tally import Tally
from api.tracker import Tracker
from api.views import Views, no_route
from shared.config.settings import MAX_WAIT, Settings
from shared.errors import CachedProxyError, StoreUnavailable
from shared.queue import FETCH_TASK, QUEUES, REFRESH_TASK, celery_app
from shared.store import health
from shared.store.breaker import UpstreamBreaker
from shared.store.client import connect
from shared.store.entries import EntryStore, store_error
from shared.store.flights import Flights
from shared.store.inventory import Inventory
from shared.store.keys import Keys
from shared.store.overview import Status
from shared.store.schedule import Schedule
from shared.telemetry.logs import context_value
from shared.telemetry.metrics import RedisCollector
from shared.upstreams.registry import subscribe, upstream_of, views

log = logging.getLogger(__name__)
ADMIN = "/admin/"


class Api(bottle.Bottle):
    """The Bottle app, and its answers without I/O (``answer``, on the event loop: a hit
    or a remembered 404 from a process's copy, and refusals: no such route, wrong
    method, parameters a view refuses, each as Bottle would send it)."""

    def __init__(self, pages: Views) -> None:
        super().__init__()
        self.pages = pages

    def answer(self, environ: dict[str, Any], start_response: Callable[..., Any]
               ) -> Iterable[bytes] | None:
        """The answer without I/O, or None: the request needs Redis (its route reads it,
        or it is for the admin API, which refuses by its own rules)."""
        answered = self.pages.hits.answer(environ, start_response)
        if answered is not None:
            return answered
        path = environ["PATH_INFO"].encode("latin-1").decode("utf-8", "ignore")  # as Bottle
        if path.startswith(ADMIN):
            return None
        try:
            route, raw = self.router.match({"REQUEST_METHOD": environ["REQUEST_METHOD"],
                                            "PATH_INFO": path})
        except bottle.HTTPError as err:  # no such route (404), or not that method (405)
            body = error_of(err, path)
            return _refuse(environ, start_response, err.status_line,
                           [("Content-Type", JSON_TYPE), *err.headers.items()], body)
        view = route.config.get("view")
        if view is not None:
            error = self.pages.refusal(view, raw, beyond_path(environ))
            if error is not None:  # parameters the view refuses (400, or 404 read-through)
                environ[ROUTE] = route.rule
                return _refuse(environ, start_response, f"{error.status} {_reason(error)}",
                               [("Content-Type", JSON_TYPE), *error.headers.items()],
                               error_body(error.status, error.code, error.message))
        if not route.config.get("on_loop"):
            return None  # its route reads Redis
        return self.wsgi(environ, start_response)


def _refuse(environ: dict[str, Any], start_response: Callable[..., Any], status: str,
            headers: list[tuple[str, str]], body: bytes) -> list[bytes]:
    """A refusal answered before Bottle, as Bottle would send it."""
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]


def _reason(error: CachedProxyError) -> str:
    return HTTP_CODES.get(error.status, "Error")


def http_error(err: bottle.HTTPError) -> bytes:
    """Bottle's error handler: its errors as the API's JSON errors (``error_of``)."""
    bottle.response.content_type = JSON_TYPE
    return error_of(err, bottle.request.path)


def error_of(err: bottle.HTTPError, path: str = "") -> bytes:
    """The JSON body of one of Bottle's errors: no such route (or, under an upstream's
    read-through prefix, not on its allowlist), method not allowed (with HEAD in Allow
    wherever GET is), and 500s, logged."""
    status = err.status_code
    reason = err.status_line.partition(" ")[2].lower()
    message = {404: no_route(path), 405: "method not allowed"}.get(
        status, "internal error" if status >= 500 else reason)
    if status >= 500:
        log.error("unhandled error", extra={"error": repr(err.exception)})
    if status == 405:  # every GET route answers HEAD too
        allowed = [m.strip() for m in err.headers.get("Allow", "").split(",") if m.strip()]
        err.headers["Allow"] = ", ".join(allowed + ["HEAD"] * ("GET" in allowed))
    return error_body(status, _code(status), message)


def create_app(
    reader: Reader,
    current: Callable[[], Settings],
    readiness: Callable[[], dict[str, Any]] | None = None,
    metrics: Callable[[], tuple[bytes, str]] | None = None,
    admin: bottle.Bottle | None = None,
    tracker: Tracker | None = None,
    copies: Copies | None = None,
    shelf: Shelf | None = None,
) -> Api:
    """The app; ``current`` gives the settings in force now (they may change live);
    ``readiness`` checks Redis, workers and beat for /readyz; ``admin`` is mounted at
    /admin/ (api/admin.py); with a ``tracker`` of entry changes, which drops the
    process's ``copies`` as their entries change, fresh views are served from the copies
    without Redis (api/hits.py)."""
    pages = Views(reader, current, tracker, copies, shelf)
    app = Api(pages)

    for view in views():
        handler = pages.handler(view)
        route = view.route.rstrip("/").replace("{", "<").replace("}", ">")
        app.route(route, "GET", handler, name=view.name, view=view)
        app.route(route + "/", "GET", handler, view=view)  # the trailing slash is optional

    @app.get("/healthz", on_loop=True)
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

    @app.get("/openapi.json", on_loop=True)
    def openapi_json() -> bottle.HTTPResponse:
        return bottle.HTTPResponse(spec, 200, {"Content-Type": JSON_TYPE})

    app.default_error_handler = http_error
    if admin is not None:
        admin.default_error_handler = http_error
        mount_admin(app, admin, current)
    return app


def _code(status: int) -> str:
    if status >= 500:
        return "internal"
    return {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")


def celery_enqueue(queue: Celery) -> Enqueue:
    """How the read path enqueues a miss's fetch: a fetch task on ``queue``."""
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
    """The app wired to Redis and the task queue (``served`` without the bridge)."""
    return served(settings, current)


def bridged(settings: Settings, current: Callable[[], Settings] | None = None) -> Bridge:
    """The app as the server runs it: hits on the event loop, the rest on
    ``api.threads`` threads (api/bridge.py)."""
    app = served(settings, current)
    return Bridge(app, app.answer, settings.api.threads)


def served(settings: Settings, current: Callable[[], Settings] | None = None) -> RequestLog:
    """Wire the app to Redis and the task queue; call once per server process.

    ``settings`` are those the process started with (connections, prefix); ``current``
    gives the settings in force at each request, when they follow Consul.
    """
    current = current or (lambda: settings)
    # One retry: a connection Redis closed (a restart) is replaced at once, and a Redis
    # that is down is known as such at once (api/outage.py).
    client = connect(settings.redis, retries=1)
    broker = connect(settings.redis, broker=True) if settings.redis.broker_url else client
    # Blocking waits need a socket timeout above the longest wait they may be given.
    waiting = connect(settings.redis, MAX_WAIT + settings.redis.socket_timeout, retries=1)
    keys = Keys(settings.redis.key_prefix)
    queue = celery_app(settings, main="cachedproxy-api")
    limiter = Limiter(client, keys)
    reader = Reader(
        EntryStore(client, keys),
        Flights(client, keys),
        Schedule(client, keys),
        UpstreamBreaker(client, keys),
        celery_enqueue(queue),
        current,
        waiting,
        misses=MissLimit(limiter, lambda: current().access, time.time),
    )
    copies = Copies()  # the process's copies of views; the tracker drops changed ones
    tracker = Tracker(client, keys.entry(""), copies.drop)
    shelf = Shelf.from_environ()  # the copies of the server's processes (api/shelf.py)
    tally = Tally(client, keys, reader.clock).start()  # outcomes a minute (api/tally.py)
    status = Status(client, keys, current)  # what /admin/ and gauges show

    def build() -> Api:
        return create_app(
            reader, current,
            lambda: health.readiness(client, keys, current().refresh.tick_interval),
            renderer(RedisCollector(client, keys, [keys.queue(q) for q in QUEUES], upstream_of,
                                    broker, status.upstreams, reader.clock)),
            admin_app(Inventory(client, keys),
                      lambda resource: send(queue, REFRESH_TASK, (resource,),
                                            {"on_demand": True}),
                      current, reader.clock, status.upstreams, status.overview),
            tracker,
            copies,
            shelf,
        )

    api = build()
    guarded = Access(api, lambda: current().access, settings.api.host,
                     limiter, reader.clock)

    def rebuild() -> None:
        nonlocal api
        api = guarded.app = build()  # the catalogue changed: its routes, in one swap
        copies.clear()  # views of the old catalogue may be made differently now
        shelf.clear()

    subscribe(rebuild)
    return RequestLog(guarded, tally)
