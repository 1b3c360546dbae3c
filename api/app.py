"""The Bottle app: combined views read from Redis, JSON errors, health."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import bottle
import redis
from celery import Celery
from kombu.exceptions import OperationalError

from api.reader import Enqueue, Read, Reader
from api.views import EVENTS_WITH_SUBSCRIPTIONS, View
from shared.errors import CachedProxyError, StoreUnavailable
from shared.flight import Flights
from shared.keys import Keys
from shared.queue import FETCH_TASK, celery_app
from shared.refresh import read_period
from shared.resources import check_key
from shared.schedule import Schedule
from shared.settings import Settings
from shared.store import EntryStore, store_errors

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
VIEWS = (EVENTS_WITH_SUBSCRIPTIONS,)


def json_response(status: int, body: Any) -> bottle.HTTPResponse:
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return bottle.HTTPResponse(payload, status, {"Content-Type": JSON_TYPE})


def cache_status(read: Read, now: float) -> str:
    """RFC 9211 Cache-Status: hit, or a miss forwarded upstream (collapsed onto another
    request's fetch when it did not lead one)."""
    ttl = f"ttl={int(read.fresh_for(now))}"
    if not read.fetched:
        return f"cachedproxy; hit; {ttl}"
    collapsed = "; collapsed" if read.collapsed else ""
    return f"cachedproxy; fwd=miss; stored{collapsed}; {ttl}"


def error_response(error: CachedProxyError) -> bottle.HTTPResponse:
    return json_response(error.status, error.body())


def create_app(reader: Reader) -> bottle.Bottle:
    app = bottle.Bottle()

    def serve(view: View) -> Callable[[str], bottle.HTTPResponse]:
        def handler(key: str) -> bottle.HTTPResponse:
            try:
                check_key(key)
                with store_errors():
                    read = reader.read(view.resources(key))
                response = json_response(200, view.build(key, read.entries))
                response.set_header("Cache-Status", cache_status(read, reader.clock()))
                return response
            except CachedProxyError as exc:
                return error_response(exc)
            except Exception:
                log.exception("request failed", extra={"view": view.name, "id": key})
                return error_response(CachedProxyError())

        return handler

    for view in VIEWS:
        handler = serve(view)
        app.route(f"/{view.name}/<key>", "GET", handler, name=view.name)
        app.route(f"/{view.name}/<key>/", "GET", handler)

    @app.get("/healthz")
    def healthz() -> bottle.HTTPResponse:
        return json_response(200, {"status": "ok"})

    def http_error(err: bottle.HTTPError) -> str:
        bottle.response.content_type = JSON_TYPE
        status = err.status_code
        message = {404: "no such route", 405: "method not allowed"}.get(status, "internal error")
        if status >= 500:
            log.error("unhandled error", extra={"error": repr(err.exception)})
        return json.dumps({"error": {"status": status, "code": _code(status), "message": message}})

    app.error_handler.update({status: http_error for status in (400, 404, 405, 500)})
    return app


def _code(status: int) -> str:
    return {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}.get(
        status, "internal"
    )


def celery_enqueue(queue: Celery) -> Enqueue:
    def enqueue(resource: str, token: str) -> None:
        try:
            queue.send_task(FETCH_TASK, args=(resource, token))
        except (OperationalError, redis.RedisError) as exc:
            raise StoreUnavailable("task queue unavailable") from exc

    return enqueue


def app_from_settings(settings: Settings) -> bottle.Bottle:
    """Wire the app to Redis and the task queue; call once per server process."""
    common = {
        "socket_connect_timeout": settings.redis.socket_timeout,
        "health_check_interval": 30,
    }
    client = redis.Redis.from_url(
        settings.redis.url, socket_timeout=settings.redis.socket_timeout, **common
    )
    waiting = redis.Redis.from_url(
        settings.redis.url,
        socket_timeout=settings.api.miss_wait_timeout + settings.redis.socket_timeout,
        **common,
    )
    keys = Keys(settings.redis.key_prefix)
    queue = celery_app(settings, main="cachedproxy-api")
    reader = Reader(
        EntryStore(client, keys),
        Flights(client, keys),
        Schedule(client, keys),
        celery_enqueue(queue),
        settings.api.miss_wait_timeout,
        waiting,
        read_period=read_period(
            settings.cache.ttl, settings.refresh.ratio, settings.refresh.idle_timeout),
    )
    return create_app(reader)
